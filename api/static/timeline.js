// Video result: an inline SVG timeline of each sampled frame's P(fake), drawn here without a
// charting library, with the threshold line, suspicious segments shaded, and a per-frame view.
"use strict";

import { api, pictureUrl } from "./api.js";
import { el, faceSentence, pct } from "./render.js";
import { plural } from "./words.js";

// A frame's class on the chart: the verdict rule of the whole result (threshold, unsure band);
// a frame whose faces are all too small to judge is unsure whatever its score.
function frameClass(frame, result) {
  const p = frame.probability_fake;
  if ((frame.faces || []).length && frame.faces.every((f) => f.too_small)) return "UNCERTAIN";
  if (Math.abs(p - result.threshold) < (result.unsure_margin || 0)) return "UNCERTAIN";
  return p >= result.threshold ? "FAKE" : "REAL";
}

const SVG = "http://www.w3.org/2000/svg";
const H = 240;
const M = { left: 44, right: 22, top: 12, bottom: 36 }; // room for axis labels

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// All per-frame rows; long videos have thousands, so follow next_offset page by page.
export async function fetchFrames(jobId) {
  const frames = [];
  let offset = 0;
  while (offset !== null && offset !== undefined) {
    const page = await api(`/v1/jobs/${jobId}/frames?offset=${offset}&limit=1000`);
    frames.push(...page.frames);
    offset = page.next_offset;
  }
  return frames;
}

// About `count` round-numbered time ticks, whatever the length.
function timeTicks(end, count) {
  const raw = end / count;
  const step = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600].find((s) => s >= raw) || 3600;
  const ticks = [];
  for (let t = 0; t <= end + 1e-9; t += step) ticks.push(t);
  return ticks;
}

function clock(seconds) {
  if (seconds < 60) return `${+seconds.toFixed(1)}\u00a0s`; // no line break inside "10 s"
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

// W: the drawing's width in px. Drawn at the width it is shown at, so labels keep their size
// on a phone instead of being scaled down with the whole picture.
function chart(result, frames, W) {
  const last = frames.length ? frames[frames.length - 1].timestamp_s : 0;
  const end = Math.max(result.duration_s || 0, last, 0.001);
  const x = (t) => M.left + ((W - M.left - M.right) * t) / end;
  const y = (p) => M.top + (H - M.top - M.bottom) * (1 - p);

  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "timeline", role: "group",
    "aria-label": "Probability of manipulation for each analysed frame over time",
  });
  root.append(svg("title", {}, "Probability of manipulation over time"));

  for (const seg of result.suspicious_segments || []) {
    const rect = svg("rect", { class: "segment", x: x(seg.start_s), y: M.top,
      width: Math.max(x(Math.min(seg.end_s, end)) - x(seg.start_s), 2), height: H - M.top - M.bottom });
    rect.append(svg("title", {}, `Suspicious ${clock(seg.start_s)} to ${clock(seg.end_s)}: ` +
      `${pct(seg.mean_probability_fake)} on average`));
    root.append(rect);
  }

  for (const p of [0, 0.5, 1]) {
    root.append(svg("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(p), y2: y(p) }),
      svg("text", { class: "tick", x: M.left - 6, y: y(p) + 4, "text-anchor": "end" }, `${p * 100}%`));
  }
  for (const t of timeTicks(end, Math.max(3, Math.floor(W / 110)))) {
    root.append(svg("text", { class: "tick", x: x(t), y: H - M.bottom + 16, "text-anchor": "middle" }, clock(t)));
  }
  root.append(svg("text", { class: "axis", x: (W + M.left) / 2, y: H - 4, "text-anchor": "middle" }, "time"));

  const thr = svg("line", { class: "threshold", x1: M.left, x2: W - M.right, y1: y(result.threshold), y2: y(result.threshold) });
  thr.append(svg("title", {}, `Threshold: frames at ${pct(result.threshold)} or above are flagged`));
  root.append(thr, svg("text", { class: "threshold-label", x: W - M.right - 4, y: y(result.threshold) - 5,
    "text-anchor": "end" }, `flag at ${pct(result.threshold)}`));

  // The line breaks at frames without a face: there is no score to connect through.
  let d = "", pen = false;
  for (const f of frames) {
    if (f.probability_fake === null) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${x(f.timestamp_s).toFixed(1)},${y(f.probability_fake).toFixed(1)}`;
    pen = true;
  }
  root.append(svg("path", { class: "line", d }));

  // One focusable point per analysed frame; frames without a face sit on the baseline, hollow.
  const r = frames.length > 400 ? 2.5 : 4.5;
  frames.forEach((f, i) => {
    const face = f.probability_fake !== null;
    const label = face
      ? `Frame at ${clock(f.timestamp_s)}: ${pct(f.probability_fake, result.threshold)} manipulation score`
      : `Frame at ${clock(f.timestamp_s)}: no face`;
    const point = svg("circle", {
      class: `point ${face ? frameClass(f, result) : "none"}`,
      cx: x(f.timestamp_s).toFixed(1), cy: y(face ? f.probability_fake : 0).toFixed(1), r,
      tabindex: 0, role: "button", "aria-label": label, "data-frame": i,
    });
    point.append(svg("title", {}, label));
    root.append(point);
  });
  return root;
}

// Frame pictures the worker kept (a small JPEG with the boxes drawn in), fetched once each.
const framePictures = new Map();

function framePicture(jobId, frame, cls) {
  const img = el("img", { class: cls, alt: `Frame at ${clock(frame.timestamp_s)}` +
    (frame.faces && frame.faces.length ? ", faces outlined and numbered" : "") });
  const key = `${jobId}/${frame.index}`;
  if (!framePictures.has(key)) framePictures.set(key, pictureUrl(`/v1/jobs/${jobId}/frames/${frame.index}/image`));
  framePictures.get(key).then((url) => { img.src = url; }).catch(() => {
    img.replaceWith(el("p", { class: "hint", text: "This frame's picture is not available." }));
  });
  return img;
}

// Faces drawn as boxes on a frame-shaped outline: for jobs analysed before frames were kept.
function frameOutline(result, faces) {
  const w = result.width || 16, h = result.height || 9;
  const pic = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "frame-boxes", role: "img",
    "aria-label": `Positions of ${plural(faces.length, "face")} in the frame` });
  pic.append(svg("rect", { class: "frame", x: 0, y: 0, width: w, height: h }));
  faces.forEach((f, i) => {
    const [fx, fy, fw, fh] = f.box;
    pic.append(svg("rect", { class: `face ${f.prediction}`, x: fx, y: fy, width: fw, height: fh,
      "stroke-width": Math.max(w, h) / 150 }),
    svg("text", { class: "face-text", x: fx, y: Math.max(fy - w / 100, w / 25), "font-size": w / 25 },
      `${i + 1}: ${pct(f.probability_fake, result.threshold)}`));
  });
  return pic;
}

// The selected frame: its picture with the faces outlined, and its faces as text.
function frameDetail(job, frame, panel) {
  const result = job.result;
  const faces = frame.faces || [];
  const title = `Frame at ${clock(frame.timestamp_s)} (frame ${frame.frame_number ?? frame.index})`;
  const words = el("div", {}, el("h4", { text: title }),
    faces.length
      ? el("ul", { class: "faces" }, ...faces.map((f, i) =>
        el("li", { class: f.prediction, text: faceSentence(f, i, result.threshold) })))
      : el("p", { text: "No face found in this frame." }));
  const picture = result.frame_images ? framePicture(job.id, frame, "frame-image") : frameOutline(result, faces);
  if (result.frame_images && faces.length) {
    panel.replaceChildren(words, el("div", { class: "frame-view" }, picture, ...frameHeatmapToggle(job.id, frame, picture)));
  } else {
    panel.replaceChildren(words, picture);
  }
}

// Frame heatmaps, by "job/index": a worker draws one when first asked for (pictureUrl waits
// through the 202 answers), so each is asked for once per page.
const frameHeatmaps = new Map();

// "Show heatmap": the frame with a Grad-CAM overlay on its faces, in place of its picture.
function frameHeatmapToggle(jobId, frame, picture) {
  const id = `frame-heatmap-${frame.index}`;
  const toggle = el("input", { type: "checkbox", id });
  const label = el("label", { for: id, class: "toggle" }, toggle, " Show heatmap (where the model looked)");
  const heat = el("img", { class: "frame-heat", hidden: true,
    alt: `Frame at ${clock(frame.timestamp_s)} with a Grad-CAM heatmap over each face` });
  const note = el("p", { class: "hint", hidden: true });
  toggle.addEventListener("change", async () => {
    if (toggle.checked && !heat.src) {
      const key = `${jobId}/${frame.index}`;
      if (!frameHeatmaps.has(key)) frameHeatmaps.set(key, pictureUrl(`/v1/jobs/${jobId}/frames/${frame.index}/heatmap`));
      label.classList.add("loading");
      toggle.disabled = true;
      try {
        heat.src = await frameHeatmaps.get(key);
        note.hidden = true;
      } catch (err) {
        frameHeatmaps.delete(key); // asked again on the next toggle
        toggle.checked = false;
        note.textContent = `Heatmap unavailable: ${err.message}`;
        note.hidden = false;
        return;
      } finally {
        label.classList.remove("loading");
        toggle.disabled = false;
      }
    }
    heat.hidden = !toggle.checked;
    picture.hidden = toggle.checked;
  });
  return [heat, label, note];
}

// Up to `count` frames spread evenly over the video, as a strip of small pictures.
function filmstrip(job, frames, count, onPick) {
  const step = Math.max(1, frames.length / count);
  const picks = [];
  for (let k = 0; k < frames.length && picks.length < count; k += step) picks.push(Math.floor(k));
  const strip = el("ol", { class: "filmstrip", "aria-label": "Frames across the video" });
  for (const i of picks) {
    const f = frames[i];
    const score = f.probability_fake === null ? "no face" : pct(f.probability_fake, job.result.threshold);
    const button = el("button", { type: "button", "data-frame": i,
      class: f.probability_fake === null ? "none" : frameClass(f, job.result) },
    framePicture(job.id, f, "film"), el("span", { text: `${clock(f.timestamp_s)} · ${score}` }));
    button.addEventListener("click", () => onPick(i));
    strip.append(el("li", {}, button));
  }
  return strip;
}

export async function renderVideo(job, body) {
  const r = job.result;
  const how = r.sampling === "keyframes"
    ? `keyframes only, the nearest at or before each of ${plural(r.sample_fps, "sample")} per second of video`
    : `${r.sample_fps} per second of video`;
  const facts = `${plural(r.frames_analyzed, "frame")} analysed (${how}), ` +
    `${r.frames_with_faces} with a face; the video is ${clock(r.duration_s)} long.`;
  const rule = r.aggregation === "mean_of_frame_max"
    ? "How the video verdict is made: the average, over sampled frames that contain a face, of each frame's most suspicious face."
    : `Aggregation rule: ${r.aggregation}.`;
  const segments = (r.suspicious_segments || []).length
    ? `Shaded: ${plural(r.suspicious_segments.length, "suspicious stretch", "suspicious stretches")}, where consecutive frames score at or above the threshold.`
    : "No stretch of frames scored at or above the threshold.";
  const holder = el("div", { class: "chart", "aria-busy": "true" }, el("p", { class: "hint", text: "Loading frames…" }));
  const panel = el("div", { class: "frame-detail", "aria-live": "polite" },
    el("p", { class: "hint", text: "Select a point on the timeline to see that frame and its faces." }));
  body.append(el("p", { class: "facts", text: facts }), el("p", { class: "rule", text: rule }),
    el("h3", { text: "Timeline" }), el("p", { class: "hint", text: segments }), holder, panel);

  const frames = await fetchFrames(job.id);
  const root = chart(r, frames, Math.max(300, Math.min(holder.clientWidth || 640, 900)));
  holder.replaceChildren(root);
  holder.removeAttribute("aria-busy");

  const pick = (i) => {
    root.querySelectorAll(".point.selected").forEach((p) => p.classList.remove("selected"));
    const point = root.querySelector(`.point[data-frame="${i}"]`);
    if (point) point.classList.add("selected");
    body.querySelectorAll(".filmstrip button").forEach((b) =>
      b.setAttribute("aria-pressed", String(b.dataset.frame === String(i))));
    frameDetail(job, frames[i], panel);
  };
  const select = (target) => {
    const i = target && target.getAttribute && target.getAttribute("data-frame");
    if (i !== null && i !== undefined) pick(Number(i));
  };
  if (r.frame_images && frames.length) holder.after(filmstrip(job, frames, 8, pick));
  // Open on the most suspicious frame with a face (the first frame when none has one), so the
  // panel shows a picture at once, also on a reopened or shared page.
  if (frames.length) {
    let top = -1;
    frames.forEach((f, i) => {
      if (f.probability_fake !== null && (top < 0 || f.probability_fake > frames[top].probability_fake)) top = i;
    });
    pick(Math.max(top, 0));
  }
  root.addEventListener("click", (e) => select(e.target.closest("[data-frame]")));
  root.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      select(e.target.closest("[data-frame]"));
    }
  });
}
