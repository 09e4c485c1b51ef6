"""Draws Resources/Icons/ABCImmunoResponse.png (128 x 128): an axial CT slice with a
liver lesion outlined, and a small gauge showing a response probability.

Run from anywhere: ``python Resources/Icons/draw_icon.py`` (matplotlib, numpy).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle, Ellipse, Polygon, Wedge

SIZE_PX = 128
OUT = Path(__file__).with_name("ABCImmunoResponse.png")


def draw() -> None:
    fig = plt.figure(figsize=(1, 1), dpi=SIZE_PX)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 128)
    ax.set_ylim(128, 0)
    ax.set_axis_off()
    fig.patch.set_alpha(0)

    # Axial CT slice: body outline (soft tissue), lungs (air), liver, spine (bone).
    ax.add_patch(Ellipse((60, 62), 108, 82, color="#6f6f6f"))
    ax.add_patch(Ellipse((60, 62), 100, 74, color="#8a8a8a"))
    ax.add_patch(Ellipse((36, 44), 30, 30, color="#1c1c1c"))
    ax.add_patch(Ellipse((84, 44), 28, 30, color="#1c1c1c"))
    ax.add_patch(Ellipse((40, 72), 52, 34, angle=-20, color="#a8a8a8"))  # liver (image left = patient right)
    ax.add_patch(Circle((62, 86), 6, color="#f2f2f2"))
    ax.add_patch(Ellipse((62, 95), 4, 7, color="#f2f2f2"))
    # Target lesion in the liver: hypodense, outlined like a segment.
    theta = np.linspace(0, 2 * np.pi, 40)
    radius = 9 + 1.0 * np.sin(2 * theta) + 0.6 * np.cos(5 * theta)
    ax.add_patch(Polygon(np.c_[38 + radius * np.cos(theta), 72 + 0.8 * radius * np.sin(theta)],
                         closed=True, facecolor="#5e5e5e", edgecolor="#ff7f0e", linewidth=2.2))

    # Probability gauge, bottom right: low (red) to high (green), needle at 0.72.
    centre, outer = (100, 116), 25
    # The y axis points down, so angles run clockwise: 0-60 degrees is the left (low) end.
    for start, end, colour in ((0, 60, "#d62728"), (60, 120, "#ffbf00"), (120, 180, "#2ca02c")):
        ax.add_patch(Wedge(centre, outer, 180 + start, 180 + end, width=9, color=colour))
    ax.add_patch(Wedge(centre, outer + 2, 180, 360, width=2, color="white"))
    angle = np.radians(180 - 0.72 * 180)
    ax.plot([centre[0], centre[0] + 21 * np.cos(angle)], [centre[1], centre[1] - 21 * np.sin(angle)],
            color="white", linewidth=3.2, solid_capstyle="round")
    ax.plot([centre[0], centre[0] + 21 * np.cos(angle)], [centre[1], centre[1] - 21 * np.sin(angle)],
            color="#202020", linewidth=1.6, solid_capstyle="round")
    ax.add_patch(Circle(centre, 3.5, color="#202020"))

    fig.savefig(OUT, dpi=SIZE_PX, transparent=True)
    plt.close(fig)


if __name__ == "__main__":
    draw()
    print(f"wrote {OUT}")
