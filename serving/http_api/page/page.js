// The search page: Describe for the status line, SearchVideos for a sentence, SearchCaptions for a chosen video,
// each a POST of the method's JSON message to the HTTP API beside this page, with the tab's token if one is given.

const API = "strata.v1.Strata/";
const TOKEN_KEY = "strata.token";
const $ = (id) => document.getElementById(id);

class CallError extends Error {
  constructor(httpStatus, error) {
    super(error?.message || `the server answered HTTP ${httpStatus}`);
    this.needsToken = httpStatus === 401 || httpStatus === 403;
  }
}

async function call(method, body) {
  const headers = { "content-type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(API + method, { method: "POST", headers, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new CallError(response.status, answer.error);
  return answer;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

// A score as shown (4 decimals) with its exact value, as JSON gave it, in the <data> element's value.
const score = (value, props = {}) => el("data", { value: String(value), textContent: value.toFixed(4), ...props });
const count = (int64) => Number(int64).toLocaleString("en");

function showError(err) {
  const box = $("error");
  box.textContent = err.needsToken ? `${err.message}: enter a token under “Access token”.` : err.message;
  box.hidden = false;
  if (err.needsToken) {
    $("access").open = true;
    $("token").focus();
  }
}

function clearError() {
  $("error").hidden = true;
}

async function describe() {
  try {
    const about = await call("Describe", {});
    $("status").textContent = `Model ${about.model.name} version ${about.model.version} · ${count(about.videos)} ` +
      `videos, ${count(about.captions)} captions indexed · levels: ${about.levels.join(", ")}`;
  } catch (err) {
    $("status").textContent = "Not connected.";
    showError(err);
  }
}

// -- videos ---------------------------------------------------------------------------------------------------------
// A video hit is its summary (a button that shows its captions) and then these parts, each drawn from the hit and
// the page's bar scale.
const VIDEO_PARTS = [levelBars, evidenceStrip];

function levelBars(hit, scale) {
  const rows = hit.levels.map((level) => {
    const bar = el("span", { className: "bar", ariaHidden: "true" }, el("span"));
    bar.firstChild.style.setProperty("--share", Math.max(0, level.score) / scale);
    const name = el("dt", { textContent: level.level });
    if (level.empty) {
      name.classList.add("empty");
      name.title = "the sentence has no words of this level";
    }
    return el("div", { className: "level" }, name, el("dd", {}, bar, score(level.score)));
  });
  return el("dl", { className: "levels", ariaLabel: `level scores of ${hit.id}` }, ...rows);
}

// Where each phrase of the sentence was found: for every level that attends over frames, a row per verb or noun
// phrase, a cell per sampled frame of the video shaded by the weight the model's attention gave it (the phrase's
// heaviest frame darkest). Levels of one vector per item have no such evidence and draw nothing.
function evidenceStrip(hit) {
  const rows = (hit.evidence || []).filter((level) => level.temporal).flatMap((level) => level.nodes.map((node) => {
    const top = Math.max(...node.frames.map((frame) => frame.weight), 0) || 1;
    const cells = node.frames.map((frame) => {
      const cell = el("span", { className: "frame", title: frameTitle(frame) });
      cell.dataset.weight = String(frame.weight);
      cell.style.setProperty("--weight", frame.weight / top);
      return cell;
    });
    return el("div", { className: "node" },
      el("span", { className: "phrase", textContent: `${level.level} · ${node.words}` }),
      el("span", { className: "strip", role: "img", ariaLabel: `frames that “${node.words}” matched` }, ...cells));
  }));
  return el("div", { className: "evidence", ariaLabel: `where in ${hit.id} each phrase was found` }, ...rows);
}

function frameTitle(frame) {
  const when = frame.timeS >= 0 ? ` at ${frame.timeS.toFixed(2)} s` : "";
  return `frame ${frame.frame}${when}: weight ${frame.weight.toFixed(3)}`;
}

function videoHit(hit, rank, scale) {
  const summary = el("button", { type: "button", className: "video", ariaPressed: "false" },
    el("span", { className: "rank", textContent: `${rank}.` }),
    el("span", { className: "id", textContent: hit.id }),
    el("span", { className: "source", textContent: hit.source }),
    score(hit.score, { className: "fused", title: "fused score" }));
  summary.addEventListener("click", () => chooseVideo(hit.id, summary));
  return el("li", { className: "hit" }, summary, ...VIDEO_PARTS.map((part) => part(hit, scale)));
}

let searches = 0;

async function search(event) {
  event.preventDefault();
  const text = $("query").value.trim();
  if (!text) return;
  const mine = ++searches;
  clearError();
  $("videos-note").textContent = "Searching…";
  $("videos").replaceChildren();
  resetCaptions();
  try {
    const answer = await call("SearchVideos", { text, evidence: true });
    if (mine !== searches) return;
    // Bars share one scale: the highest level score in the list fills its bar.
    const scale = Math.max(...answer.hits.flatMap((hit) => hit.levels.map((level) => level.score)), 0) || 1;
    $("videos").replaceChildren(...answer.hits.map((hit, i) => videoHit(hit, i + 1, scale)));
    const ms = answer.timings.reduce((sum, timing) => sum + timing.ms, 0);
    $("videos-note").textContent = answer.hits.length
      ? `${answer.hits.length} videos by fused score (of ${answer.candidates} candidates), ${ms.toFixed(0)} ms; ` +
        "each bar is a level's score, the highest here full; under them, each phrase's frames, darker where it " +
        "was found."
      : "No videos found.";
  } catch (err) {
    if (mine !== searches) return;
    $("videos-note").textContent = "";
    showError(err);
  }
}

// -- captions -------------------------------------------------------------------------------------------------------
let lookups = 0;

function resetCaptions() {
  lookups++;
  $("captions-title").textContent = "Captions";
  $("captions-note").textContent = "Choose a video to see the captions that describe it.";
  $("captions").replaceChildren();
}

function captionHit(hit, videoId) {
  const own = hit.videoId === videoId;
  const meta = own ? `${hit.id} · written for this video` : hit.videoId ? `${hit.id} · written for ${hit.videoId}` : hit.id;
  return el("li", { className: own ? "caption own" : "caption" },
    el("span", { className: "text", textContent: hit.text }),
    score(hit.score, { title: "fused score" }),
    el("span", { className: "meta", textContent: meta }));
}

async function chooseVideo(videoId, button) {
  const mine = ++lookups;
  for (const other of document.querySelectorAll("#videos button.video")) other.ariaPressed = String(other === button);
  clearError();
  $("captions-title").textContent = `Captions of ${videoId}`;
  $("captions-note").textContent = "Searching…";
  $("captions").replaceChildren();
  try {
    const answer = await call("SearchCaptions", { videoId });
    if (mine !== lookups) return;
    $("captions").replaceChildren(...answer.hits.map((hit) => captionHit(hit, videoId)));
    $("captions-note").textContent = answer.hits.length
      ? `${answer.hits.length} captions by fused score.` : "No captions found.";
  } catch (err) {
    if (mine !== lookups) return;
    $("captions-note").textContent = "";
    showError(err);
  }
}

// -- start ----------------------------------------------------------------------------------------------------------
function setToken() {
  const token = $("token").value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  clearError();
  describe();
}

$("token").value = sessionStorage.getItem(TOKEN_KEY) ?? "";
$("token").addEventListener("change", setToken);
$("search").addEventListener("submit", search);
describe();
