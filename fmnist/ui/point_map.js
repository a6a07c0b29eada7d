// The map of images (fmnist/ui/point_map.py): one dot per image on a canvas, coloured by
// its class. Hovering names the image, a click picks it (the "pick" trigger, sent again
// for the same point), a click on the legend shows one class alone, a double-click on the
// map shows them all again. Stars are the user's own pictures.
//
// Plain canvas code rather than a charting library: the page loads this file (12 KB) and
// Streamlit's component runtime (15 KB), and 3,000 dots draw in a few milliseconds.

const PAD = { left: 58, right: 14, top: 10, bottom: 42 };
const DOT = 2.6; // radius in CSS pixels
const HIT = 7; // how near the pointer a dot must be to be hovered or clicked
const HIT_TOUCH = 16; // a finger is less precise than a mouse
const FADED = 0.06;
const STAR = 9;

export default function ({ parentElement, data: sent, setTriggerValue }) {
  if (!sent) return undefined; // mounted empty only for the browser to load this code
  const data = JSON.parse(new TextDecoder().decode(sent)); // JSON text, sent as bytes
  let root = parentElement.querySelector(".fmnist-map");
  if (!root) root = build(parentElement);
  const state = root.fmnistMap;
  state.data = data;
  // The span of the dots and stars, padded: once per run, not at each move of the mouse.
  state.xRange = padded(data.x.concat(data.stars.map((star) => star.x)));
  state.yRange = padded(data.y.concat(data.stars.map((star) => star.y)));
  state.pick = (index) => setTriggerValue("pick", index);
  // The point the page inspects; a click shows its ring before the page answers.
  state.picked = data.picked ?? null;
  drawLegend(root);
  draw(root);
  return undefined; // the elements and their listeners stay for the next run
}

function build(parent) {
  const root = document.createElement("div");
  root.className = "fmnist-map";
  root.innerHTML = `<style>
.fmnist-map { position: relative; font-family: inherit; }
.fmnist-map canvas { display: block; width: 100%; cursor: crosshair;
  touch-action: manipulation; }
.fmnist-map .fmnist-map-tip { position: absolute; pointer-events: none; display: none;
  background: rgba(255,255,255,.96); border: 1px solid #bbb; border-radius: 4px;
  padding: 4px 8px; font-size: 13px; line-height: 1.35; white-space: nowrap;
  box-shadow: 0 1px 4px rgba(0,0,0,.15); z-index: 2; }
.fmnist-map .fmnist-map-tip.visible { display: block; }
.fmnist-map .fmnist-map-legend { display: grid; margin: 4px 0 0 20px; gap: 2px 6px;
  grid-template-columns: repeat(auto-fit, minmax(76px, 1fr)); font-size: 12px; }
.fmnist-map .fmnist-map-legend button { all: unset; cursor: pointer; display: flex;
  align-items: center; gap: 5px; padding: 1px 3px; border-radius: 3px; }
.fmnist-map .fmnist-map-legend button:hover { background: #f0f2f6; }
.fmnist-map .fmnist-map-legend button:focus-visible { outline: 2px solid #1f77b4; }
.fmnist-map .fmnist-map-legend button.off { opacity: .35; }
.fmnist-map .fmnist-map-legend i { width: 9px; height: 9px; border-radius: 50%;
  display: inline-block; }
</style><canvas role="img"></canvas><div class="fmnist-map-tip"></div>
<div class="fmnist-map-legend"></div>`;
  parent.appendChild(root);
  const canvas = root.querySelector("canvas");
  const tip = root.querySelector(".fmnist-map-tip");
  const state = (root.fmnistMap = { shown: null });
  // Redrawn when the column's width changes (its first report, at once, is not a change).
  new ResizeObserver(() => {
    if (root.clientWidth !== state.width) draw(root);
  }).observe(root);
  canvas.addEventListener("pointermove", (event) => {
    const found = nearest(root, event);
    if (!found) {
      tip.classList.remove("visible");
      return;
    }
    const d = state.data;
    tip.innerHTML =
      found.star !== undefined
        ? `<b>your picture</b> ${escapeHtml(d.stars[found.star].name)}`
        : `<b>${escapeHtml(d.classes[d.label[found.point]])}</b><br>index ${d.index[found.point]}`;
    tip.classList.add("visible");
    const left = Math.min(found.px + 12, root.clientWidth - tip.offsetWidth - 2);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${Math.max(0, found.py - tip.offsetHeight - 10)}px`;
  });
  canvas.addEventListener("pointerleave", () => tip.classList.remove("visible"));
  canvas.addEventListener("click", (event) => {
    if (event.detail > 1) return; // the second click of a double-click: not a pick
    const found = nearest(root, event);
    if (!found || found.point === undefined) return;
    state.picked = state.data.index[found.point];
    draw(root);
    state.pick(state.picked);
  });
  canvas.addEventListener("dblclick", () => {
    state.shown = null;
    drawLegend(root);
    draw(root);
  });
  return root;
}

function drawLegend(root) {
  const state = root.fmnistMap;
  const d = state.data;
  const legend = root.querySelector(".fmnist-map-legend");
  const all = document.createElement("button");
  all.type = "button";
  all.textContent = "✕ all classes";
  all.title = "Show every class again (or double-click the map)";
  all.addEventListener("click", () => {
    state.shown = null;
    drawLegend(root);
    draw(root);
  });
  legend.replaceChildren(
    ...d.classes.map((name, label) => {
      const button = document.createElement("button");
      button.type = "button";
      button.innerHTML = `<i style="background:${d.colours[label]}"></i>${escapeHtml(name)}`;
      button.title = "Show this class alone (shift-click: add it); double-click the map: all";
      if (state.shown && !state.shown.has(label)) button.classList.add("off");
      button.addEventListener("click", (event) => {
        const shown = state.shown;
        if (event.shiftKey && shown) {
          if (shown.has(label)) shown.delete(label);
          else shown.add(label);
          if (shown.size === 0 || shown.size === d.classes.length) state.shown = null;
        } else {
          const alone = shown && shown.size === 1 && shown.has(label);
          state.shown = alone ? null : new Set([label]);
        }
        drawLegend(root);
        draw(root);
      });
      return button;
    }),
    ...(state.shown ? [all] : []),
  );
}

function scales(root) {
  const state = root.fmnistMap;
  const width = root.clientWidth;
  const height = state.data.height;
  const [x0, x1] = state.xRange;
  const [y0, y1] = state.yRange;
  const left = PAD.left;
  const right = width - PAD.right;
  const top = PAD.top;
  const bottom = height - PAD.bottom;
  return {
    width, height, left, right, top, bottom, x0, x1, y0, y1,
    sx: (v) => left + ((v - x0) / (x1 - x0)) * (right - left),
    sy: (v) => bottom - ((v - y0) / (y1 - y0)) * (bottom - top),
  };
}

function padded(values) {
  let low = Infinity;
  let high = -Infinity;
  for (const v of values) {
    if (v < low) low = v;
    if (v > high) high = v;
  }
  if (!isFinite(low)) return [0, 1];
  const margin = (high - low) * 0.04 || 1;
  return [low - margin, high + margin];
}

function ticks(low, high, count) {
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  if (!(step > 0) || !isFinite(step)) return out;
  // Counted in whole steps (v += step can stop moving where the numbers are large).
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  for (let k = Math.ceil(low / step); k * step <= high && out.length < 50; k++) {
    out.push({ value: k * step, text: format(k * step, digits) });
  }
  return out;
}

function draw(root) {
  const state = root.fmnistMap;
  const d = state.data;
  const canvas = root.querySelector("canvas");
  const s = scales(root);
  if (s.width <= 0) return;
  state.width = s.width;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(s.width * ratio);
  canvas.height = Math.round(s.height * ratio);
  canvas.style.height = `${s.height}px`; // its width follows the column (CSS)
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, s.width, s.height);

  // Grid, ticks and the axes' titles.
  g.font = "11px sans-serif";
  g.fillStyle = "#555";
  g.strokeStyle = "#e6e6e6";
  g.lineWidth = 1;
  g.textAlign = "center";
  g.textBaseline = "top";
  const columns = Math.max(2, Math.floor((s.right - s.left) / 70));
  for (const { value, text } of ticks(s.x0, s.x1, columns)) {
    const x = Math.round(s.sx(value)) + 0.5;
    line(g, x, s.top, x, s.bottom);
    g.fillText(text, x, s.bottom + 4);
  }
  g.textAlign = "right";
  g.textBaseline = "middle";
  const rows = Math.max(2, Math.floor((s.bottom - s.top) / 50));
  for (const { value, text } of ticks(s.y0, s.y1, rows)) {
    const y = Math.round(s.sy(value)) + 0.5;
    line(g, s.left, y, s.right, y);
    g.fillText(text, s.left - 5, y);
  }
  g.strokeStyle = "#888";
  g.strokeRect(s.left + 0.5, s.top + 0.5, s.right - s.left, s.bottom - s.top);
  g.font = "bold 11px sans-serif";
  g.fillStyle = "#333";
  g.textAlign = "center";
  g.textBaseline = "bottom";
  g.fillText(d.xTitle, (s.left + s.right) / 2, s.height - 2);
  g.save();
  g.translate(12, (s.top + s.bottom) / 2);
  g.rotate(-Math.PI / 2);
  g.textBaseline = "middle";
  g.fillText(d.yTitle, 0, 0);
  g.restore();

  // The dots: faded classes first, so that the shown ones lie on top.
  g.save();
  g.beginPath();
  g.rect(s.left, s.top, s.right - s.left, s.bottom - s.top);
  g.clip();
  const shown = state.shown;
  let pickedAt = -1;
  for (const pass of shown ? [false, true] : [true]) {
    g.globalAlpha = pass ? 0.75 : FADED;
    for (let i = 0; i < d.x.length; i++) {
      const label = d.label[i];
      if (shown && shown.has(label) !== pass) continue;
      if (d.index[i] === state.picked) pickedAt = i;
      g.fillStyle = d.colours[label];
      g.beginPath();
      g.arc(s.sx(d.x[i]), s.sy(d.y[i]), DOT, 0, 2 * Math.PI);
      g.fill();
    }
  }
  g.globalAlpha = 1;
  if (pickedAt >= 0) {
    g.fillStyle = d.colours[d.label[pickedAt]];
    g.strokeStyle = "#000";
    g.lineWidth = 2;
    g.beginPath();
    g.arc(s.sx(d.x[pickedAt]), s.sy(d.y[pickedAt]), 7, 0, 2 * Math.PI);
    g.fill();
    g.stroke();
  }
  for (const star of d.stars) drawStar(g, s.sx(star.x), s.sy(star.y));
  g.restore();
  const count = shown ? d.label.filter((label) => shown.has(label)).length : d.x.length;
  canvas.setAttribute(
    "aria-label",
    `A map of ${d.x.length} images, ${count} shown, along ${d.xTitle} and ${d.yTitle}` +
      (d.stars.length ? `, with ${d.stars.length} of your pictures as stars` : ""),
  );
  // One attribute change at the end of each drawing: tests and benchmarks wait for it.
  canvas.dataset.drawn = String((+canvas.dataset.drawn || 0) + 1);
}

function line(g, x0, y0, x1, y1) {
  g.beginPath();
  g.moveTo(x0, y0);
  g.lineTo(x1, y1);
  g.stroke();
}

function drawStar(g, x, y) {
  g.beginPath();
  for (let k = 0; k < 10; k++) {
    const r = k % 2 ? STAR * 0.45 : STAR;
    const a = -Math.PI / 2 + (k * Math.PI) / 5;
    g.lineTo(x + r * Math.cos(a), y + r * Math.sin(a));
  }
  g.closePath();
  g.fillStyle = "#111";
  g.strokeStyle = "#fff";
  g.lineWidth = 1;
  g.fill();
  g.stroke();
}

function nearest(root, event) {
  const reach = event.pointerType === "touch" ? HIT_TOUCH : HIT;
  const state = root.fmnistMap;
  const d = state.data;
  const s = scales(root);
  const box = root.querySelector("canvas").getBoundingClientRect();
  const px = event.clientX - box.left;
  const py = event.clientY - box.top;
  let best = null;
  let bestDistance = reach * reach;
  d.stars.forEach((star, k) => {
    const dx = s.sx(star.x) - px;
    const dy = s.sy(star.y) - py;
    if (dx * dx + dy * dy <= STAR * STAR) best = { star: k, px, py };
  });
  if (best) return best;
  for (let i = 0; i < d.x.length; i++) {
    if (state.shown && !state.shown.has(d.label[i])) continue;
    const dx = s.sx(d.x[i]) - px;
    const dy = s.sy(d.y[i]) - py;
    const distance = dx * dx + dy * dy;
    if (distance <= bestDistance) {
      bestDistance = distance;
      best = { point: i, px, py };
    }
  }
  return best;
}

function format(v, digits) {
  return (Math.abs(v) < 1e-12 ? 0 : v).toFixed(Math.min(digits, 6));
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
