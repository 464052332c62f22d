// The page's controller: picking/dropping files, uploading, polling a job, showing its result,
// the history list and the settings field. Result views live in render.js and timeline.js.
"use strict";

import { api, ApiError, getApiKey, pictureUrl, sentence, setApiKey, uploadJob } from "./api.js";
import { el, pct, provenancePanel, renderBatch, renderImage, verdictText } from "./render.js";
import { renderVideo } from "./timeline.js";
import { duration, plural } from "./words.js";

const $ = (id) => document.getElementById(id);
const ACTIVE = ["queued", "running"];
const POLL_MS = 600;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Files this page uploaded, by job id: the API does not serve originals back, the browser has them.
const localFiles = new Map();
let current = null; // {jobId} of the job on screen, or {upload} while uploading

// ------------------------------------------------------------------------- status & errors

function setStatus(text, done = 0, total = 0) {
  $("activity").hidden = false;
  $("progress").hidden = false;
  if ($("status").textContent !== text) $("status").textContent = text; // no repeat announcements
  const bar = $("progress");
  if (total > 0) {
    bar.max = total;
    bar.value = done;
  } else {
    bar.removeAttribute("value"); // indeterminate
  }
}

function showError(err) {
  const box = $("error");
  const headline = err instanceof ApiError ? err.message : "Something went wrong in this page.";
  const detail = err instanceof ApiError ? err.detail : sentence(err && err.message);
  box.replaceChildren(el("strong", { text: headline }), detail ? el("span", { text: ` ${detail}` }) : null);
  box.hidden = false;
}

function clearMessages() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

// ------------------------------------------------------------------------- submitting

function isVideo(file) {
  return file.type.startsWith("video/") || /\.(mp4|mov|mkv|webm|avi|m4v|mpe?g)$/i.test(file.name);
}

async function submitFiles(fileList) {
  const files = [...fileList];
  if (!files.length) return;
  clearMessages();
  if (files.length > 1 && files.some(isVideo)) {
    showError(new ApiError(400, "video_in_batch", "Submit a video on its own.",
      "Several files make a batch of images; pick one video at a time."));
    return;
  }
  const form = new FormData();
  if (files.length === 1) {
    form.append("file", files[0]);
    if (isVideo(files[0]) && $("sample-fps").value) form.append("sample_fps", $("sample-fps").value);
    if (isVideo(files[0])) form.append("sampling", $("sampling").value);
  } else {
    for (const f of files) form.append("files", f);
  }
  stopPolling();
  $("result").hidden = true;
  const what = files.length === 1 ? files[0].name : `${files.length} images`;
  // The bar moves with every event; the announced text only in 10% steps (aria-live is polite,
  // not a ticker).
  const upload = uploadJob(form, (loaded, total) =>
    setStatus(`Uploading ${what}: ${10 * Math.floor((10 * loaded) / total)}%`, loaded, total));
  current = { upload };
  setStatus(`Uploading ${what}…`);
  $("cancel").hidden = false;
  try {
    const job = await upload.done;
    localFiles.set(job.id, files);
    history.pushState({ jobId: job.id }, "", `/jobs/${job.id}`);
    openJob(job.id);
    refreshHistory();
  } catch (err) {
    current = null;
    $("cancel").hidden = true;
    if (err instanceof ApiError && err.code === "aborted") {
      setStatus("Upload canceled. Nothing was sent for analysis.");
      $("progress").hidden = true;
    } else {
      $("activity").hidden = true;
      showError(err);
    }
  } finally {
    $("media").value = ""; // picking the same file again should submit again
  }
}

// ------------------------------------------------------------------------- one job

function stopPolling() {
  current = null;
}

function progressText(job) {
  const { done, total, eta_s: eta } = job.progress;
  if (job.status === "queued") return "Waiting in the queue…";
  const left = eta ? `; ${duration(eta)} left` : "";
  if (job.kind === "batch") return `Analysing images: ${done} of ${total} done${left}`;
  if (job.kind === "video") {
    if (!total) return "Reading the video…";
    if (!done) return `Analysing video: ${plural(total, "frame")} to look at, starting…`;
    return `Analysing video: ${done} of ${plural(total, "frame")} done${left}`;
  }
  return "Analysing the image…";
}

async function openJob(jobId) {
  clearMessages();
  const mine = { jobId };
  current = mine;
  $("result").hidden = true;
  $("cancel").hidden = true;
  hideLatestFrame();
  setStatus("Loading the job…");
  let failures = 0;
  let settingsShown = false;
  for (let polls = 0; ; polls += 1) {
    let job;
    try {
      job = await api(`/v1/jobs/${jobId}`);
      failures = 0;
    } catch (err) {
      if (current !== mine) return;
      // A restart or a busy database is brief: keep polling a while before giving up.
      const transient = err instanceof ApiError && (err.status === 0 || err.status >= 500);
      if (transient && ++failures <= 5) {
        setStatus("Lost contact with the service; retrying…");
        await sleep(2000);
        continue;
      }
      $("activity").hidden = true;
      showError(err);
      return;
    }
    if (current !== mine) return; // the user moved on to another job
    if (!settingsShown) settingsShown = showSettings(job);
    if (!ACTIVE.includes(job.status)) {
      hideLatestFrame();
      $("cancel").hidden = true;
      current = null;
      finish(job);
      return;
    }
    setStatus(progressText(job), job.progress.done, job.progress.total);
    $("cancel").hidden = false;
    showLatestFrame(job, mine);
    // Quick answers for short jobs, fewer requests for long videos.
    await sleep(Math.min(POLL_MS + polls * 25, 2500));
    if (current !== mine) return;
  }
}

// A video job's page shows the sampling it was analysed with, not whatever was chosen last.
function showSettings(job) {
  if (job.kind !== "video" || !job.params) return true;
  if (typeof job.params.sample_fps === "number") $("sample-fps").value = String(job.params.sample_fps);
  $("sampling").value = job.params.sampling === "keyframes" ? "keyframes" : "exact";
  return true;
}

// While a video runs: the latest frame analysed, with its boxes, from the pictures the worker
// keeps (the frames' rows are in sample order, so the last row is the latest frame).
async function showLatestFrame(job, mine) {
  const live = $("live-frame");
  if (job.kind !== "video" || job.status !== "running" || !job.progress.done) return;
  let frame;
  try {
    const page = await api(`/v1/jobs/${job.id}/frames?offset=${job.progress.done - 1}&limit=1`);
    frame = page.frames[0];
  } catch {
    return; // a preview only: the next poll tries again
  }
  if (!frame || current !== mine || live.dataset.frame === `${job.id}/${frame.index}`) return;
  live.dataset.frame = `${job.id}/${frame.index}`;
  try {
    const url = await pictureUrl(`/v1/jobs/${job.id}/frames/${frame.index}/image`, { waitMs: 0 });
    if (current !== mine) return;
    const img = live.querySelector("img");
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = url;
  } catch {
    return;
  }
  const score = frame.probability_fake === null ? "no face" : `${pct(frame.probability_fake)} manipulation score`;
  live.querySelector("figcaption").textContent = `Latest frame analysed: ${frame.timestamp_s.toFixed(1)} s into the video, ${score}`;
  live.hidden = false;
}

function hideLatestFrame() {
  const live = $("live-frame");
  live.hidden = true;
  delete live.dataset.frame;
}

async function finish(job) {
  const total = Math.max(job.progress.total, 1);
  if (job.status === "canceled") setStatus("Canceled.", job.progress.done, total);
  if (job.status === "failed") {
    setStatus("The analysis failed.", job.progress.done, total);
    const message = job.error ? sentence(job.error.message) : "";
    showError(new ApiError(0, job.error ? job.error.code : "failed", "We could not analyse this file.", message));
  }
  refreshHistory();
  if (job.status !== "succeeded") return;
  if (!job.result) {
    setStatus("Finished.", total, total);
    return;
  }
  // renderResult writes the verdict line at once (a video's frames load after), so the one
  // status announcement can carry the verdict.
  const rendering = renderResult(job);
  setStatus(`Finished. ${$("verdict").textContent}.`, total, total);
  if (localFiles.has(job.id)) $("result").scrollIntoView({ block: "nearest" });
  try {
    await rendering;
  } catch (err) {
    showError(err);
  }
}

async function renderResult(job) {
  const r = job.result;
  const body = $("result-body");
  body.replaceChildren();
  const verdict = $("verdict");
  let words;
  if (job.kind === "batch") {
    const s = r.summary;
    words = {
      verdict: `${s.fake} of ${s.total} image${s.total === 1 ? "" : "s"} likely manipulated`,
      explanation: `Each image is judged by its most suspicious face; we flag ${pct(r.threshold)} and above.`,
    };
    verdict.className = `verdict ${s.fake ? "FAKE" : "REAL"}`;
  } else {
    words = verdictText(r);
    verdict.className = `verdict ${r.prediction}`;
  }
  verdict.textContent = words.verdict;
  $("explanation").textContent = words.explanation;
  $("result").hidden = false;
  const files = localFiles.get(job.id);
  let rendering = null;
  if (job.kind === "image") renderImage(job, files && files[0], body);
  else if (job.kind === "batch") renderBatch(job, files, body);
  else if (job.kind === "video") rendering = renderVideo(job, body); // lays out before it awaits
  if (r.provenance) body.append(provenancePanel(r.provenance));
  await rendering;
}

$("cancel").addEventListener("click", async () => {
  const now = current;
  if (!now) return;
  if (now.upload) {
    now.upload.abort();
    return;
  }
  $("cancel").disabled = true;
  try {
    await api(`/v1/jobs/${now.jobId}/cancel`, { method: "POST" });
    setStatus("Canceling…");
  } catch (err) {
    showError(err); // e.g. 409: it finished in the meantime; the next poll shows the result
  } finally {
    $("cancel").disabled = false;
  }
});

// ------------------------------------------------------------------------- history

function when(iso) {
  // The API's timestamps are UTC; older rows may lack the offset.
  const d = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(iso) ? iso : `${iso}Z`);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function historyLabel(job) {
  const names = (job.inputs || []).map((i) => i.filename).filter(Boolean);
  const name = names.length > 1 ? `${names[0]} and ${names.length - 1} more` : names[0] || job.kind;
  let outcome = job.status;
  const r = job.result;
  if (job.status === "succeeded" && r) {
    if (r.summary) outcome = `${r.summary.fake} of ${r.summary.total} likely manipulated`;
    else if (r.prediction === "NO_FACE") outcome = "no face found";
    else if (r.prediction) outcome = `${verdictText(r).verdict}`;
  }
  return { name, outcome };
}

const HISTORY_PAGE = 20;
// The listing as shown: rows so far and the cursor of the next (older) page, for the filters
// chosen. A refresh reloads as many rows as are shown, so paging on is not undone by it.
const listing = { count: 0, cursor: null };

// "exact frames, 1 per second" / "keyframes, 2 per second": how a video job was sampled.
function samplingText(job) {
  const p = job.params || {};
  const mode = p.sampling === "keyframes" ? "keyframes" : "exact frames";
  return typeof p.sample_fps === "number" ? `${mode}, ${p.sample_fps} per second` : mode;
}

function historyRow(job) {
  const { name, outcome } = historyLabel(job);
  const shown = job.id === shownJobId();
  return el("li", { "data-job": job.id, "aria-current": shown ? "page" : null },
    el("a", { href: `/jobs/${job.id}`, "data-job": job.id }, el("span", { class: "name", text: name })),
    shown ? el("span", { class: "current", text: "(shown above)" }) : null,
    el("span", { class: `kind ${job.kind}`, text: job.kind }),
    job.kind === "video" ? el("span", { class: "sampling", text: samplingText(job) }) : null,
    el("span", { class: `outcome ${job.status}`, text: outcome }),
    el("time", { datetime: job.created_at, text: when(job.created_at) }));
}

function historyQuery(limit, cursor) {
  const query = new URLSearchParams({ limit: String(limit) });
  if ($("filter-status").value) query.set("status", $("filter-status").value);
  if ($("filter-kind").value) query.set("kind", $("filter-kind").value);
  if (cursor) query.set("cursor", cursor);
  return `/v1/jobs?${query}`;
}

async function refreshHistory({ more = false } = {}) {
  const limit = more ? HISTORY_PAGE : Math.min(100, Math.max(HISTORY_PAGE, listing.count));
  let page;
  try {
    page = await api(historyQuery(limit, more ? listing.cursor : null));
  } catch (err) {
    // The list is a convenience: its errors stay quiet, except a missing key, which the user
    // can fix right here.
    if (err instanceof ApiError && err.status === 401) {
      $("history").replaceChildren();
      $("history-more").hidden = true;
      $("history-empty").textContent = "Enter your API key in Settings (at the top) to see your jobs.";
      $("history-empty").hidden = false;
      $("settings").open = true;
    }
    return;
  }
  const rows = page.jobs.map(historyRow);
  if (more) $("history").append(...rows);
  else $("history").replaceChildren(...rows);
  listing.count = $("history").children.length;
  listing.cursor = page.next_cursor;
  $("history-more").hidden = !page.next_cursor;
  const filtered = $("filter-status").value || $("filter-kind").value;
  $("history-empty").textContent = filtered ? "No jobs match these filters." : "No jobs yet.";
  $("history-empty").hidden = listing.count > 0;
}

for (const id of ["filter-status", "filter-kind"]) {
  $(id).addEventListener("change", () => {
    listing.count = 0; // a new listing starts at its first page
    refreshHistory();
  });
}
$("history-more").addEventListener("click", () => refreshHistory({ more: true }));

function shownJobId() {
  const match = location.pathname.match(/^\/jobs\/([^/]+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

// Opening a job from the list keeps this page (and the local files for thumbnails).
$("history").addEventListener("click", (e) => {
  const link = e.target.closest("a[data-job]");
  if (!link || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  history.pushState({ jobId: link.dataset.job }, "", link.getAttribute("href"));
  openJob(link.dataset.job);
  $("result-title").scrollIntoView({ block: "start" });
});

// ------------------------------------------------------------------------- picking & dropping

$("media").addEventListener("change", () => submitFiles($("media").files));

const zone = $("dropzone");
for (const type of ["dragenter", "dragover"]) {
  zone.addEventListener(type, (e) => {
    e.preventDefault();
    zone.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  submitFiles(e.dataTransfer.files);
});
// A file dropped next to the zone would otherwise replace the page with the file.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

// ------------------------------------------------------------------------- settings

$("api-key").value = getApiKey();
$("settings-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("api-key").value.trim();
  setApiKey(key);
  $("settings-status").textContent = key ? "Saved. The key is sent with every request." : "Cleared. No key is sent.";
  refreshHistory();
});

// ------------------------------------------------------------------------- routing

function route() {
  const jobId = shownJobId();
  if (jobId) {
    openJob(jobId);
  } else {
    stopPolling();
    $("activity").hidden = true;
    $("result").hidden = true;
    clearMessages();
  }
}

window.addEventListener("popstate", route);
route();
refreshHistory();
