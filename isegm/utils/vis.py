"""Pictures of predictions: mask overlays with clicks, probability maps, mIoU-versus-clicks plots."""
from pathlib import Path
from typing import Dict, List, Sequence

import cv2
import numpy as np

POSITIVE_COLOUR = (0, 200, 0)
NEGATIVE_COLOUR = (220, 0, 0)


def draw_probmap(probs: np.ndarray) -> np.ndarray:
    """H x W probabilities -> H x W x 3 uint8 RGB (a colour map)."""
    grey = np.clip(probs * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def draw_with_blend_and_clicks(image: np.ndarray, mask: np.ndarray, clicks_list=(), alpha: float = 0.5,
                               colour=(255, 0, 0), radius: int = 5) -> np.ndarray:
    """Blend a boolean mask onto an RGB image and draw the clicks (green positive, red negative)."""
    out = image.astype(np.float32).copy()
    out[mask] = (1 - alpha) * out[mask] + alpha * np.array(colour, np.float32)
    out = out.astype(np.uint8)
    for click in clicks_list:
        y, x = (int(round(v)) for v in click.coords)
        cv2.circle(out, (x, y), radius, POSITIVE_COLOUR if click.is_positive else NEGATIVE_COLOUR, -1)
    return out


def plot_miou_curves(curves: Dict[str, Sequence[float]], path: Path, title: str) -> None:
    """Write a PNG with one mIoU-versus-number-of-clicks line per entry of ``curves``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), np.asarray(values) * 100, marker="o", markersize=3, label=name)
    ax.set_xlabel("number of clicks")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def miou_curve(all_ious: List[np.ndarray], n_clicks: int) -> np.ndarray:
    """Mean IoU after each click, a finished sequence keeping its last IoU."""
    padded = [np.pad(ious, (0, n_clicks - len(ious)), mode="edge") if len(ious) else np.zeros(n_clicks)
              for ious in all_ious]
    return np.mean(padded, axis=0) if padded else np.zeros(n_clicks)
