"use strict";
const $ = (id) => document.getElementById(id);
let current = null;

function describe(result) {
  if (!result) return "";
  if (result.prediction === "NO_FACE") return "No face was found.";
  const pct = Math.round(result.probability_fake * 100);
  const thr = Math.round(result.threshold * 100);
  return `${result.prediction}: ${pct}% likely manipulated; we flag above ${thr}%`;
}

function errorText(body, status) {
  if (body && body.error) return body.error.message;
  return `request failed (${status})`;
}

async function refreshHistory() {
  const res = await fetch("/v1/jobs?limit=10");
  if (!res.ok) return;
  const body = await res.json();
  $("history").replaceChildren(...body.jobs.map((job) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `/jobs/${job.id}`;
    a.textContent = `${job.created_at.slice(0, 19)} ${job.kind} ${job.status} ${job.result ? job.result.prediction || "" : ""}`;
    li.append(a);
    return li;
  }));
}

function render(job) {
  $("job").hidden = false;
  $("status").textContent = `Job ${job.id}: ${job.status}`;
  $("progress").max = Math.max(job.progress.total, 1);
  $("progress").value = job.progress.done;
  $("cancel").hidden = !["queued", "running"].includes(job.status);
  const verdict = $("verdict");
  verdict.className = "";
  verdict.textContent = "";
  const details = [];
  if (job.status === "failed") verdict.textContent = `Failed: ${job.error.message}`;
  const r = job.result;
  if (r && job.kind !== "batch") {
    verdict.textContent = describe(r);
    verdict.className = r.prediction;
    (r.faces || []).forEach((f, i) => details.push(`Face ${i + 1} at ${f.box.join(", ")}: ${Math.round(f.probability_fake * 100)}% fake`));
    if (job.kind === "video") {
      details.push(`${r.frames_analyzed} frames analysed, ${r.frames_with_faces} with faces, ${r.duration_s} s`);
      (r.suspicious_segments || []).forEach((s) => details.push(`Suspicious ${s.start_s}-${s.end_s} s (${Math.round(s.mean_probability_fake * 100)}%)`));
    }
  }
  if (r && job.kind === "batch") {
    const s = r.summary;
    verdict.textContent = `${s.fake} fake, ${s.real} real, ${s.no_face} without a face, ${s.failed} failed`;
    r.items.forEach((it) => details.push(`${it.filename}: ${it.error ? it.error.message : describe(it)}`));
  }
  $("details").replaceChildren(...details.map((t) => { const li = document.createElement("li"); li.textContent = t; return li; }));
}

async function poll(id) {
  current = id;
  while (current === id) {
    const res = await fetch(`/v1/jobs/${id}`);
    const body = await res.json();
    if (!res.ok) { $("message").textContent = errorText(body, res.status); return; }
    render(body);
    if (!["queued", "running"].includes(body.status)) { refreshHistory(); return; }
    await new Promise((r) => setTimeout(r, 700));
  }
}

$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const files = $("media").files;
  const form = new FormData();
  if (files.length === 1) form.append("file", files[0]);
  else for (const f of files) form.append("files", f);
  $("message").textContent = "Uploading…";
  const res = await fetch("/v1/jobs", { method: "POST", body: form });
  const body = await res.json();
  if (!res.ok) { $("message").textContent = errorText(body, res.status); return; }
  $("message").textContent = "";
  history.pushState(null, "", `/jobs/${body.id}`);
  poll(body.id);
});

$("cancel").addEventListener("click", async () => {
  if (current) await fetch(`/v1/jobs/${current}`, { method: "DELETE" });
});

const match = location.pathname.match(/^\/jobs\/([0-9a-f]{32})$/);
if (match) poll(match[1]);
refreshHistory();
