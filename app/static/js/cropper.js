// The crop box over the shopper's photo: drag to move, drag a corner to resize, or use the keys
// (arrows move, Shift+arrows resize). The region is kept as fractions of the photo: x, y, w, h.

const MIN_SIZE = 0.1; // the smallest region, as a fraction of each side
const KEY_STEP = 0.02;

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

export class Cropper {
  /**
   * @param {HTMLElement} stage the element that holds the preview image and the box, sized to the image
   * @param {HTMLElement} box the crop box, with children [data-handle="nw|ne|sw|se"]
   * @param {(region: {x: number, y: number, w: number, h: number}) => void} onChange
   */
  constructor(stage, box, onChange) {
    this.stage = stage;
    this.box = box;
    this.onChange = onChange;
    this.region = { x: 0, y: 0, w: 1, h: 1 };
    this.drag = null;
    box.addEventListener("pointerdown", (e) => this.startDrag(e));
    box.addEventListener("pointermove", (e) => this.moveDrag(e));
    box.addEventListener("pointerup", (e) => this.endDrag(e));
    box.addEventListener("pointercancel", (e) => this.endDrag(e));
    box.addEventListener("keydown", (e) => this.onKey(e));
    this.render();
  }

  /** The whole photo selected again. */
  reset() {
    this.set({ x: 0, y: 0, w: 1, h: 1 });
  }

  /** True when the region is the whole photo (nothing to send). */
  isWhole() {
    const r = this.region;
    return r.x <= 0.001 && r.y <= 0.001 && r.w >= 0.999 && r.h >= 0.999;
  }

  /** "x,y,w,h" as the API's crop field takes it. */
  toField() {
    const r = this.region;
    return [r.x, r.y, r.w, r.h].map((v) => v.toFixed(4)).join(",");
  }

  set(region) {
    const w = clamp(region.w, MIN_SIZE, 1);
    const h = clamp(region.h, MIN_SIZE, 1);
    this.region = { x: clamp(region.x, 0, 1 - w), y: clamp(region.y, 0, 1 - h), w, h };
    this.render();
    this.onChange(this.region);
  }

  render() {
    const r = this.region;
    Object.assign(this.box.style, {
      left: `${r.x * 100}%`, top: `${r.y * 100}%`, width: `${r.w * 100}%`, height: `${r.h * 100}%`,
    });
    this.box.setAttribute(
      "aria-valuetext",
      `region from ${Math.round(r.x * 100)}%, ${Math.round(r.y * 100)}%, ` +
        `${Math.round(r.w * 100)}% wide, ${Math.round(r.h * 100)}% high`,
    );
  }

  startDrag(event) {
    const rect = this.stage.getBoundingClientRect();
    this.drag = {
      handle: event.target.dataset.handle || "move",
      startX: event.clientX, startY: event.clientY,
      width: rect.width, height: rect.height,
      from: { ...this.region },
    };
    this.box.setPointerCapture(event.pointerId);
    event.preventDefault();
  }

  moveDrag(event) {
    if (!this.drag) return;
    const d = this.drag;
    const dx = (event.clientX - d.startX) / d.width;
    const dy = (event.clientY - d.startY) / d.height;
    const f = d.from;
    if (d.handle === "move") {
      this.set({ ...f, x: f.x + dx, y: f.y + dy });
      return;
    }
    // A corner: the opposite corner stays where it is.
    let { x, y, w, h } = f;
    if (d.handle.includes("w")) { const nx = clamp(f.x + dx, 0, f.x + f.w - MIN_SIZE); w = f.x + f.w - nx; x = nx; }
    if (d.handle.includes("e")) { w = clamp(f.w + dx, MIN_SIZE, 1 - f.x); }
    if (d.handle.includes("n")) { const ny = clamp(f.y + dy, 0, f.y + f.h - MIN_SIZE); h = f.y + f.h - ny; y = ny; }
    if (d.handle.includes("s")) { h = clamp(f.h + dy, MIN_SIZE, 1 - f.y); }
    this.set({ x, y, w, h });
  }

  endDrag(event) {
    if (!this.drag) return;
    this.drag = null;
    if (this.box.hasPointerCapture(event.pointerId)) this.box.releasePointerCapture(event.pointerId);
  }

  onKey(event) {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const [mx, my] = move.map((m) => m * KEY_STEP);
    const r = this.region;
    if (event.shiftKey) this.set({ ...r, w: r.w + mx, h: r.h + my });
    else this.set({ ...r, x: r.x + mx, y: r.y + my });
  }
}
