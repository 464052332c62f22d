// Result views for image and batch jobs, plus the small DOM and wording helpers the views share.
"use strict";

import { pictureUrl } from "./api.js";

// el("p", {class: "x", text: "hi"}, child, ...): small helper so no HTML strings are ever built
// from API data (file names come from users).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// 0.823 -> "82%". One decimal near the ends, so 0.996 does not read as a certain "100%"; and,
// given the threshold, as many digits as it takes not to print a score as equal to it
// (0.4996 as "50%" next to "we flag 50% and above" would contradict a REAL verdict).
export function pct(p, threshold) {
  const v = p * 100;
  let digits = (v > 99 && v < 100) || (v > 0 && v < 1) ? 1 : 0;
  if (typeof threshold === "number" && p !== threshold) {
    while (digits < 3 && v.toFixed(digits) === (threshold * 100).toFixed(digits)) digits += 1;
  }
  return `${v.toFixed(digits)}%`;
}

const VERDICT_WORDS = {
  FAKE: "Likely manipulated",
  REAL: "Looks real",
  UNCERTAIN: "Unsure",
  NO_FACE: "No face found",
};

const SIGNAL_WORDS = { face_swap: "face swap", synthetic: "fully synthetic", fake: "manipulated" };

// One phrase per verdict that names the score without contradicting it:
// "Looks real: 3% manipulation score", "Unsure: 52% manipulation score, too close to call".
export function verdictText(result) {
  const words = VERDICT_WORDS[result.prediction] || result.prediction;
  if (result.prediction === "NO_FACE") {
    return { verdict: words, explanation: "We could not find a face, so there is nothing to judge." };
  }
  const score = `${pct(result.probability_fake, result.threshold)} manipulation score`;
  const margin = result.unsure_margin || 0;
  let rule = `Scores of ${pct(result.threshold)} and above are called manipulated`;
  if (margin > 0) {
    rule += `; between ${pct(Math.max(0, result.threshold - margin))} and ` +
      `${pct(Math.min(1, result.threshold + margin))} we say unsure rather than guess`;
  }
  let explanation = `${rule}.`;
  if (result.signals) {
    const parts = Object.entries(result.signals).map(([k, v]) => `${SIGNAL_WORDS[k] || k} ${pct(v)}`);
    explanation += ` Signals of the most suspicious face: ${parts.join(", ")}.`;
  }
  // measured: on swap methods and generators left out of its training the model is near
  // chance (weights/README.md), so no verdict should read as a certificate
  explanation += " It can miss swap methods and generators it never learnt from: a low score " +
    "is not proof that a face is real.";
  // the image's score is its most suspicious face's, and every real face has its own chance
  // of being flagged, so a photo of many people is flagged more often than a portrait
  const judged = (result.faces || []).filter((f) => !f.too_small).length;
  if (judged > 1) {
    explanation += ` The score is that of the most suspicious of its ${judged} faces, and ` +
      "each real face has its own chance of being flagged: look at each face below.";
  }
  let tail = result.prediction === "UNCERTAIN" ? ", too close to call" : "";
  if (result.too_small) tail = ", the faces are too small to judge";
  return { verdict: `${words}: ${score}${tail}`, explanation };
}

export function faceSentence(face, i, threshold) {
  const [x, y, w, h] = face.box;
  return `Face ${i + 1} (at ${x}, ${y}; ${w}×${h} px): ` +
    `${pct(face.probability_fake, threshold)} manipulation score, ` +
    (face.too_small ? "too small to judge" :
      `${(VERDICT_WORDS[face.prediction] || face.prediction).toLowerCase()}`);
}

// One object URL per local File, however often a view is redrawn (e.g. re-sorting a batch).
const fileUrls = new WeakMap();
export function fileUrl(file) {
  if (!fileUrls.has(file)) fileUrls.set(file, URL.createObjectURL(file));
  return fileUrls.get(file);
}

// ---------------------------------------------------------------------------------- image

// Face boxes are positioned in percent of the image's own size, so they follow the displayed
// size (phone or desktop) without any resize handling.
function faceBoxes(faces, width, height, threshold) {
  return faces.map((face, i) => {
    const [x, y, w, h] = face.box;
    const box = el("div", { class: `face-box ${face.prediction}`, "data-face": i, "aria-hidden": "true" },
      el("span", { class: "face-label", text: `${i + 1}: ${pct(face.probability_fake, threshold)}` }));
    box.style.left = `${(100 * x) / width}%`;
    box.style.top = `${(100 * y) / height}%`;
    box.style.width = `${(100 * w) / width}%`;
    box.style.height = `${(100 * h) / height}%`;
    // A face touching the top edge would push its label off the image: keep it inside then.
    if (y < 0.08 * height) box.classList.add("label-inside");
    return box;
  });
}

// A worker makes a heatmap when it is first asked for (202 until it is stored; pictureUrl
// asks again): onWait runs if that takes a moment, so the page can say so.
function heatmapUrl(jobId, onWait = () => {}) {
  const slow = setTimeout(onWait, 300);
  return pictureUrl(`/v1/jobs/${jobId}/heatmap`).finally(() => clearTimeout(slow));
}

// Whether the service can draw a heatmap for this result: every image job with a face can.
function hasHeatmap(r) {
  return Boolean(r.heatmap || (r.faces || []).length);
}

// The small copy of an image (index 0) or batch item the worker kept for reopened pages.
export function thumbnailUrl(jobId, index) {
  return pictureUrl(`/v1/jobs/${jobId}/thumbnails/${index}`);
}

export function renderImage(job, localFile, body) {
  const r = job.result;
  const stage = el("div", { class: "stage" });
  const base = el("img", { class: "base", alt: "" });
  const heat = el("img", { class: "heat", alt: "Grad-CAM heatmap over the faces", hidden: true });
  stage.append(base, heat);
  const note = el("p", { class: "hint" });
  const figure = el("figure", { class: "image-result" }, stage, el("figcaption", {}, note));
  body.append(figure);

  base.addEventListener("load", () => {
    stage.append(...faceBoxes(r.faces || [], r.width || base.naturalWidth, r.height || base.naturalHeight,
      r.threshold));
  }, { once: true });

  if (localFile) {
    // A format the browser cannot show (e.g. TIFF): fall back to the kept thumbnail.
    base.addEventListener("error", () => {
      if (r.thumbnail) thumbnailUrl(job.id, 0).then((url) => { base.src = url; }).catch(() => {});
    }, { once: true });
    base.src = fileUrl(localFile);
    base.alt = `The uploaded image, ${localFile.name}, with each face outlined`;
    note.textContent = "Boxes: red = flagged as manipulated, green = looks real.";
  } else if (r.thumbnail) {
    // Reopened by URL or shared: the service keeps a small copy of the image it analysed.
    thumbnailUrl(job.id, 0).then((url) => { base.src = url; }).catch((err) => {
      note.textContent = `The image is not available: ${err.message}`;
    });
    base.alt = "The analysed image (a small copy kept by the service) with each face outlined";
    note.textContent = "Boxes: red = flagged as manipulated, green = looks real. " +
      "The service keeps a small copy of the image, not the upload.";
  } else if (hasHeatmap(r)) {
    // Analysed before copies were kept: the heatmap version is the whole image.
    heatmapUrl(job.id, () => { note.textContent = "Preparing the heatmap…"; note.classList.add("busy"); })
      .then((url) => {
        base.src = url;
        note.classList.remove("busy");
        note.textContent = "The service keeps only the heatmap version of this image (warm colours: where the model looked).";
      })
      .catch(() => {
        note.classList.remove("busy");
        note.textContent = "The image is not available.";
      });
    base.alt = "The analysed image with a Grad-CAM heatmap over each face";
    note.textContent = "The service keeps only the heatmap version of this image (warm colours: where the model looked).";
  } else {
    figure.hidden = true;
  }

  // offered when the result says a heatmap exists or the API links one (computed on demand)
  const heatmap = hasHeatmap(r) || Boolean(job.links && job.links.heatmap);
  if (heatmap && (localFile || r.thumbnail)) {
    const toggle = el("input", { type: "checkbox", id: "heatmap-toggle" });
    const label = el("label", { for: "heatmap-toggle", class: "toggle" }, toggle,
      " Show the Grad-CAM heatmap (where the model looked)");
    figure.after(label);
    const boxesNote = note.textContent;
    toggle.addEventListener("change", async () => {
      if (toggle.checked && !heat.src) {
        label.classList.add("loading");
        toggle.disabled = true;
        try {
          heat.src = await heatmapUrl(job.id, () => {
            note.textContent = "Preparing the heatmap…";
            note.classList.add("busy");
          });
          note.textContent = boxesNote;
        } catch (err) {
          toggle.checked = false;
          note.textContent = `Heatmap unavailable: ${err.message}`;
          return;
        } finally {
          label.classList.remove("loading");
          toggle.disabled = false;
          note.classList.remove("busy");
        }
      }
      heat.hidden = !toggle.checked;
    });
  }

  if ((r.faces || []).length) {
    body.append(el("h3", { text: "Faces" }),
      el("ul", { class: "faces" }, ...r.faces.map((f, i) =>
        el("li", { class: f.prediction, text: faceSentence(f, i, r.threshold) }))));
  }
}

// ---------------------------------------------------------------------------------- batch

const COUNTS = [
  ["fake", "fake", "FAKE"],
  ["real", "real", "REAL"],
  ["uncertain", "unsure", "UNCERTAIN"],
  ["no_face", "no face", "NO_FACE"],
  ["failed", "failed", "failed"],
];

// Thumbnails fetched for reopened batches, by "job/index", so re-sorting does not fetch again.
const keptThumbs = new Map();

function keptThumb(jobId, item) {
  const img = el("img", { class: "thumb", alt: "", "data-kept": "" });
  const key = `${jobId}/${item.index}`;
  if (!keptThumbs.has(key)) keptThumbs.set(key, thumbnailUrl(jobId, item.index));
  keptThumbs.get(key).then((url) => { img.src = url; }).catch(() => {
    img.replaceWith(el("div", { class: "thumb filecard", "aria-hidden": "true",
      text: item.filename || `#${item.index + 1}` }));
  });
  return img;
}

function batchCard(jobId, item, file, threshold) {
  let thumb;
  if (file) thumb = el("img", { class: "thumb", src: fileUrl(file), alt: "" });
  else if (item.thumbnail) thumb = keptThumb(jobId, item);
  else thumb = el("div", { class: "thumb filecard", "aria-hidden": "true", text: item.filename || `#${item.index + 1}` });
  let verdict;
  if (item.error) {
    verdict = el("p", { class: "badge failed", text: `Failed: ${item.error.message}` });
  } else if (item.prediction === "NO_FACE") {
    verdict = el("p", { class: "badge NO_FACE", text: "No face found" });
  } else {
    verdict = el("p", { class: `badge ${item.prediction}`,
      text: `${VERDICT_WORDS[item.prediction] || item.prediction}: ` +
        `${pct(item.probability_fake, threshold)} manipulation score` });
  }
  return el("li", { class: "card", "data-index": item.index },
    thumb, el("p", { class: "filename", text: item.filename || `file ${item.index + 1}` }), verdict,
    provenanceLine(item.provenance));
}

export function renderBatch(job, localFiles, body) {
  const r = job.result;
  const counts = el("ul", { class: "counts", "aria-label": "Counts" }, ...COUNTS.map(([key, words, cls]) =>
    el("li", { class: `count ${cls}`, "data-count": key },
      el("span", { class: "number", text: String(r.summary[key]) }), ` ${words}`)));

  const sort = el("select", { id: "batch-sort" },
    el("option", { value: "index", text: "Upload order" }),
    el("option", { value: "desc", text: "Most likely manipulated first" }),
    el("option", { value: "asc", text: "Least likely manipulated first" }));
  const grid = el("ul", { class: "grid", "aria-label": "Images" });

  // Items without a probability (no face, failed) always sort last.
  const key = (item) => (typeof item.probability_fake === "number" ? item.probability_fake : null);
  const draw = () => {
    const items = [...r.items];
    if (sort.value !== "index") {
      const sign = sort.value === "desc" ? -1 : 1;
      items.sort((a, b) => {
        const ka = key(a), kb = key(b);
        if (ka === null || kb === null) return (ka === null) - (kb === null);
        return sign * (ka - kb);
      });
    }
    grid.replaceChildren(...items.map((item) => batchCard(job.id, item, localFiles && localFiles[item.index], r.threshold)));
  };
  sort.addEventListener("change", draw);
  draw();
  body.append(counts,
    el("div", { class: "row" }, el("label", { for: "batch-sort", class: "inline", text: "Sort by" }), sort),
    grid);
  const noted = r.items.find((item) => item.provenance);
  if (noted) {
    body.append(el("p", { class: "hint note", text: `Provenance (under each image): what the file itself ` +
      `declares about its origin. ${noted.provenance.note || PROVENANCE_NOTE}` }));
  }
}

// ---------------------------------------------------------------------------------- provenance

// What the file itself declares about its origin (result.provenance): Content Credentials
// (C2PA), IPTC/XMP declarations, generator traces. Said beside the model's guess, never mixed
// into it; the API's own note (absence proves nothing) is always shown with it.
const PROVENANCE_NOTE = "Absence of provenance metadata proves nothing: it is often stripped.";

function credentialsText(p) {
  const c = p.c2pa;
  if (!c) return "none";
  if (c.state === "valid" || c.state === "trusted") return p.trusted ? "trusted" : "valid";
  if (c.state === "invalid") {
    const changed = (c.failures || []).some((code) => code.includes("mismatch"));
    return changed ? "invalid (changed after signing)" : "invalid (failed validation)";
  }
  return "unreadable";
}

function signerText(p) {
  const s = p.c2pa && p.c2pa.signer;
  if (!s || !(s.common_name || s.issuer)) return null;
  const who = [s.common_name, s.issuer].filter(Boolean).join(", issued by ");
  const trust = p.trusted ? "a signer this service trusts" : "not a signer this service is set to trust";
  return `Signed by ${who} (${trust}).`;
}

function declarationText(p, compact) {
  const evidence = p.declaration_evidence === "signed" ? "signed" : "unsigned";
  const code = p.declared_source_type ? ` (${p.declared_source_type})` : "";
  if (p.declared_ai_generated === true) {
    return compact ? `declares AI-generated [${evidence}]`
      : `Declares AI-generated${code}: ${evidence} metadata` +
        (evidence === "unsigned" ? ", which anyone can write." : ".");
  }
  if (p.declared_ai_generated === false) {
    return compact ? `declares no AI [${evidence}]`
      : `Declares no generative AI${code}: ${evidence} metadata.`;
  }
  return compact ? null : "No declaration of how it was made.";
}

function tracesText(p) {
  const traces = p.metadata_traces || [];
  if (!traces.length) return null;
  return "Generator traces: " +
    traces.map((t) => `${t.generator} (${t.source} ${t.field})`).join(", ") + ".";
}

export function provenancePanel(p) {
  const status = credentialsText(p);
  const lines = [
    el("p", { class: "credentials", text: `Content Credentials: ${status}` }),
    signerText(p) ? el("p", { text: signerText(p) }) : null,
    el("p", { class: `declaration ${p.declared_ai_generated === true ? "declared-ai" : ""}`,
      text: declarationText(p, false) }),
    tracesText(p) ? el("p", { text: tracesText(p) }) : null,
    p.status === "unreadable"
      ? el("p", { text: "Some metadata could not be read (malformed, too large or hostile); what could be read is shown." })
      : null,
    el("p", { class: "hint note", text: p.note || PROVENANCE_NOTE }),
  ];
  return el("div", { class: "provenance", "data-status": p.status },
    el("h3", { text: "Provenance" }), ...lines);
}

// One line for a batch card; the batch shows the note once below its cards.
export function provenanceLine(p) {
  if (!p) return null;
  const parts = [];
  if (p.c2pa) parts.push(`Credentials: ${credentialsText(p)}`);
  const declared = declarationText(p, true);
  if (declared) parts.push(declared);
  if (!parts.length && (p.metadata_traces || []).length) parts.push("generator traces");
  if (!parts.length) parts.push(p.status === "unreadable" ? "Metadata unreadable" : "No provenance metadata");
  return el("p", { class: `provenance-line ${p.declared_ai_generated === true ? "declared-ai" : ""}`,
    "data-status": p.status, text: parts.join(" · ") });
}
