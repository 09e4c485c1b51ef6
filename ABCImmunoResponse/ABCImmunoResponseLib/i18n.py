"""Slicer's translation function, or no translation where the ``slicer-core`` wheel has none.

Import it as ``from .i18n import tr as _``: Slicer's ``tr`` takes its
translation context from the calling file, and Qt's ``lupdate`` finds the
``_("...")`` calls in the bridge as it finds them in the module.
"""

try:
    from slicer.i18n import tr
except ImportError:  # slicer-core: no application, no translations

    def tr(text: str) -> str:
        return text
