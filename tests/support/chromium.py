"""Headless Chromium as a WebVTT parser: each file loaded as a <track>, every cue it parsed reported."""

import html
import json
import re
import shutil
import subprocess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<!doctype html><html><body><video>%s</video><pre id="out">pending</pre><script>
const tracks = [...document.querySelectorAll('track')];
let left = tracks.length;
const report = () => {
  const files = tracks.map(t => [...t.track.cues].map(c => {
    const walker = document.createTreeWalker(c.getCueAsHTML(), NodeFilter.SHOW_PROCESSING_INSTRUCTION);
    const marks = [];
    while (walker.nextNode()) marks.push(walker.currentNode.data);
    const voices = [...c.getCueAsHTML().querySelectorAll('span[title]')].map(v => v.title);
    return {start: c.startTime, end: c.endTime, text: c.text, marks: marks, voices: voices};
  }));
  document.getElementById('out').textContent = JSON.stringify(files);
};
for (const t of tracks) {
  t.track.mode = 'hidden';
  t.addEventListener('load', () => { if (--left === 0) report(); });
  t.addEventListener('error', () => { document.getElementById('out').textContent = 'error ' + t.src; });
}
</script></body></html>"""


def parse_in_chromium(files: dict[str, str], folder, kind: str = "subtitles") -> dict[str, list[dict]]:
    """{file name: VTT text} -> {file name: [{start, end, text, marks, voices}]}, as the browser read them;
    `kind`: the <track>'s kind (chapters: a chapters track)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    tracks = "".join(f'<track kind="{kind}" src="{name}">' for name in files)
    (folder / "page.html").write_text(PAGE % tracks, encoding="utf-8")
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={folder / 'profile'}", "--allow-file-access-from-files",
               "--virtual-time-budget=10000", "--dump-dom", (folder / "page.html").as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    payload = html.unescape(found.group(1))
    assert payload.startswith("["), payload
    return dict(zip(files, json.loads(payload)))
