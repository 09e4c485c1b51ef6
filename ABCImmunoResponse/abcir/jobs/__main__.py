"""``python -m abcir.jobs FOLDER``: run one job folder (see ``abcir.jobs.run``).

The guard matters: worker processes started with multiprocessing's spawn
import this module again (as ``__mp_main__``) and must not run the job.
"""

import sys

from .run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
