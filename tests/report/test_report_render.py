"""Issue 6, point 3: the report renders in headless Chromium with every figure loaded, and every
figure has a title and labelled axes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nlfs.report import figures
from nlfs.report.html import build
from nlfs.runs import open_run

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Injected into a copy of the page: after load, record how many images decoded to real pixels.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length;
  document.body.setAttribute("data-figures", imgs.length + "/" + ok);
});
</script></body>"""


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no headless Chromium: `apt-get install -y chromium` (.ci/run installs it)")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("finished", ["dir"], indirect=True)
def test_report_renders_in_headless_chromium_with_every_figure_loaded(finished, tmp_path):
    page = finished.local / "index.html"
    probe = finished.local / "probe-check.html"
    probe.write_text(page.read_text().replace("</body>", PROBE))
    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'data-figures="(\d+)/(\d+)"', dom.stdout)
    assert match, f"the page did not finish loading: {dom.stdout[:500]}"
    total, loaded = map(int, match.groups())
    assert total == 6 and loaded == total  # 4 search figures + transfer + fidelity

    shot = tmp_path / "report.png"
    result = _chromium(tmp_path, "--window-size=1200,4000", "--hide-scrollbars", f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (4000, 1200)
    ink = (pixels.mean(axis=2) < 0.9).mean()  # figures, text and tables: far from a blank page
    colour = (np.ptp(pixels, axis=2) > 0.2).mean()  # plotted lines and bars are in colour
    assert ink > 0.03 and colour > 0.005, (ink, colour)
    shutil.copy(shot, finished.local / "screenshot.png")  # kept beside the report for a look


@pytest.mark.parametrize("finished", ["dir"], indirect=True)
def test_every_figure_has_a_title_and_labelled_axes(finished, monkeypatch):
    drawn = []

    def keep(fig):
        drawn.append(fig)
        return b"\x89PNG"

    monkeypatch.setattr(figures, "_png", keep)
    _, figs = build(open_run(finished.uri))
    assert len(drawn) == len(figs) == 6
    for fig, f in zip(drawn, figs):
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), f.name
        assert f.title and f.caption
