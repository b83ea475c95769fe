// A moss report page: click anything timed to play from there; the item under the playhead is
// highlighted while it plays; the waveform is drawn from peaks moss computed.
"use strict";
(() => {
  const duration = Number(document.body.dataset.duration);
  const audio = document.getElementById("player");
  const stage = document.getElementById("stage");
  const timeline = document.getElementById("timeline");
  const canvas = timeline.querySelector("canvas");
  const playhead = document.getElementById("playhead");
  const peaks = JSON.parse(document.getElementById("moss-peaks").textContent);
  const timed = [...document.querySelectorAll("[data-start]")].map((element) => ({
    element, start: Number(element.dataset.start), end: Number(element.dataset.end),
  }));

  function drawWaveform() {
    const scale = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    const context = canvas.getContext("2d");
    context.scale(scale, scale);
    context.fillStyle = getComputedStyle(canvas).color;
    const loudest = Math.max(50, ...peaks);  // a near-silent recording stays flat
    for (let x = 0; x < width && peaks.length; x++) {
      const from = Math.floor((x / width) * peaks.length);
      const to = Math.max(from + 1, Math.floor(((x + 1) / width) * peaks.length));
      const bar = Math.max(1, (Math.max(...peaks.slice(from, to)) / loudest) * height);
      context.fillRect(x, (height - bar) / 2, 1, bar);
    }
  }

  function movePlayhead(seconds) {
    playhead.style.left = `${(100 * seconds) / duration}%`;
  }

  // Mark what spans `seconds`; bring a newly current list item into view.
  function highlight(seconds) {
    movePlayhead(seconds);
    let reached = null;
    for (const { element, start, end } of timed) {
      const current = start <= seconds && seconds < end;
      if (current !== element.classList.contains("current")) {
        element.classList.toggle("current", current);
        if (current && !reached && element.classList.contains("item")) reached = element;
      }
    }
    if (reached) reached.scrollIntoView({ block: "nearest" });
  }

  function playFrom(seconds) {
    if (!audio) return highlight(seconds);  // no audio in the page: still show where that is
    audio.currentTime = seconds;
    audio.play().catch((error) => {
      if (error.name !== "AbortError") console.error(error);  // AbortError: a newer click took over
    });
  }

  document.addEventListener("click", (event) => {
    const item = event.target.closest("[data-start]");
    if (item) return playFrom(Number(item.dataset.start));
    if (timeline.contains(event.target)) {
      const box = timeline.getBoundingClientRect();
      playFrom(((event.clientX - box.left) / box.width) * duration);
    }
  });
  document.addEventListener("keydown", (event) => {
    const item = event.target.closest && event.target.closest("[data-start]");
    if (item && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      playFrom(Number(item.dataset.start));
    }
  });

  if (audio) {
    audio.addEventListener("timeupdate", () => highlight(audio.currentTime));
    audio.addEventListener("seeked", () => highlight(audio.currentTime));
    const follow = () => {  // a smooth playhead between the browser's few timeupdates a second
      movePlayhead(audio.currentTime);
      if (!audio.paused) requestAnimationFrame(follow);
    };
    audio.addEventListener("play", () => requestAnimationFrame(follow));
  }

  // The sticky player must not cover the item scrolled to.
  new ResizeObserver(() => {
    document.documentElement.style.setProperty("--stage-height", `${stage.offsetHeight}px`);
    drawWaveform();
  }).observe(stage);
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", drawWaveform);
  movePlayhead(0);
})();
