// The inspected image (fmnist/ui/pixel_picture.py): its cells on a canvas, each shaded by
// its value, with the row and column numbers at the edges. Hovering a cell tells its row,
// column and value, and outlines it.
//
// A canvas rather than a table of 784 cells, which the browser parsed, styled and laid out
// each time Explore's map tab opened: the tab opened in 346 ms instead of 364 (a canvas
// draws in a few milliseconds; Streamlit's frame for a component costs some of the gain).
// Made for small pictures (the numbers at the edges have room for two digits); in a
// column narrower than the picture it shrinks to the column's width.

const CELL = 15; // CSS pixels a side, as the table's cells were
const EDGE = 18; // room for the row numbers on the left and the column numbers on top

export default function ({ parentElement, data: sent }) {
  if (!sent) return undefined; // mounted empty only for the browser to load this code
  const data = JSON.parse(new TextDecoder().decode(sent)); // JSON text, sent as bytes
  let root = parentElement.querySelector(".fmnist-picture");
  if (!root) root = build(parentElement);
  root.fmnistPicture.data = data;
  draw(root);
  return undefined; // the elements and their listeners stay for the next run
}

function build(parent) {
  const root = document.createElement("figure");
  root.className = "fmnist-picture";
  root.innerHTML = `<style>
.fmnist-picture { margin: 0 auto; width: max-content; max-width: 100%; position: relative;
  font-family: inherit; }
.fmnist-picture figcaption { font-weight: 600; font-size: 15px; padding-bottom: 8px; }
.fmnist-picture canvas { display: block; cursor: crosshair; max-width: 100%; height: auto; }
.fmnist-picture .fmnist-picture-cell { position: absolute; pointer-events: none;
  display: none; outline: 2px solid #ff4b4b; }
.fmnist-picture .fmnist-picture-tip { position: absolute; pointer-events: none;
  display: none; background: rgba(255,255,255,.96); border: 1px solid #bbb;
  border-radius: 4px; padding: 3px 7px; font-size: 13px; white-space: nowrap;
  box-shadow: 0 1px 4px rgba(0,0,0,.15); z-index: 2; }
.fmnist-picture .visible { display: block; }
</style><figcaption></figcaption><canvas role="img"></canvas>
<div class="fmnist-picture-cell"></div><div class="fmnist-picture-tip"></div>`;
  parent.appendChild(root);
  const canvas = root.querySelector("canvas");
  const cell = root.querySelector(".fmnist-picture-cell");
  const tip = root.querySelector(".fmnist-picture-tip");
  root.fmnistPicture = { drawn: 0 };
  const hide = () => {
    cell.classList.remove("visible");
    tip.classList.remove("visible");
  };
  canvas.addEventListener("pointermove", (event) => {
    const { data } = root.fmnistPicture;
    // Shrunk to a narrow column, the canvas is drawn smaller than its own size.
    const scale = canvas.clientWidth / (EDGE + data.columns * CELL) || 1;
    const column = Math.floor((event.offsetX / scale - EDGE) / CELL);
    const row = Math.floor((event.offsetY / scale - EDGE) / CELL);
    if (row < 0 || column < 0 || row >= data.rows || column >= data.columns) return hide();
    const value = data.pixels[row * data.columns + column];
    const side = CELL * scale;
    const left = canvas.offsetLeft + (EDGE + column * CELL) * scale;
    const top = canvas.offsetTop + (EDGE + row * CELL) * scale;
    Object.assign(cell.style, { left: `${left}px`, top: `${top}px` });
    cell.style.width = cell.style.height = `${side}px`;
    tip.textContent = `row ${row}, column ${column}: ${value}`;
    cell.classList.add("visible");
    tip.classList.add("visible");
    const right = Math.min(left + side + 6, root.clientWidth - tip.offsetWidth);
    tip.style.left = `${Math.max(0, right)}px`;
    tip.style.top = `${Math.max(0, top - tip.offsetHeight - 6)}px`;
    return undefined;
  });
  canvas.addEventListener("pointerleave", hide);
  return root;
}

function draw(root) {
  const { data } = root.fmnistPicture;
  const canvas = root.querySelector("canvas");
  const width = EDGE + data.columns * CELL;
  const height = EDGE + data.rows * CELL;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = `${width}px`; // its height follows, shrunk with it if need be
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  context.font = `9px ${getComputedStyle(root).fontFamily}`; // the page's own font
  context.fillStyle = "#808495";
  context.textAlign = "center";
  context.textBaseline = "middle";
  for (let column = 0; column < data.columns; column += 1) {
    context.fillText(String(column), EDGE + (column + 0.5) * CELL, EDGE / 2);
  }
  for (let row = 0; row < data.rows; row += 1) {
    context.fillText(String(row), EDGE / 2, EDGE + (row + 0.5) * CELL);
  }
  data.pixels.forEach((value, at) => {
    const row = Math.floor(at / data.columns);
    const column = at % data.columns;
    context.fillStyle = `rgb(${value},${value},${value})`;
    // A quarter of a pixel more each way: no hairline seams between cells when zoomed.
    context.fillRect(EDGE + column * CELL, EDGE + row * CELL, CELL + 0.25, CELL + 0.25);
  });
  root.querySelector("figcaption").textContent = data.title;
  canvas.setAttribute(
    "aria-label",
    `${data.title}: ${data.rows} by ${data.columns} pixels, from 0 (black) to 255 (white)`,
  );
  // The layout, for the tests to find a cell.
  Object.assign(canvas.dataset, { cell: String(CELL), edge: String(EDGE) });
  root.fmnistPicture.drawn += 1;
  canvas.dataset.drawn = String(root.fmnistPicture.drawn);
  root.querySelector(".fmnist-picture-cell").classList.remove("visible");
  root.querySelector(".fmnist-picture-tip").classList.remove("visible");
}
