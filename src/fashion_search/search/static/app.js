// The search page: plain DOM calls, no framework, no build step. Text goes in with
// textContent only, so nothing a query, a caption or the server returns is ever parsed as HTML.
//
// One search at a time is on the page: words, "more like this" of a gallery image, a photo, or
// filters alone. Its words, image, k and filters live in the URL (?q=…&k=…&fabric=denim), so a
// search can be shared and the back button returns to the one before; a photo is never put there.
"use strict";

const $ = (id) => document.getElementById(id);
const RESERVED = new Set(["q", "k", "similar"]);
const state = { q: "", similar: null, photo: null, k: "10", filters: {} };
let facetLabels = {};
let valueLabels = {};
let lastOpener = null;
let maxResults = null; // the most results a request returns (/health); a larger k is clamped to it

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// --- the URL ---------------------------------------------------------------------------------------

function stateParams(includeSource = true) {
  const params = new URLSearchParams();
  if (includeSource && state.similar) params.set("similar", state.similar);
  else if (includeSource && state.q) params.set("q", state.q);
  params.set("k", state.k);
  for (const [facet, values] of Object.entries(state.filters)) values.forEach((v) => params.append(facet, v));
  return params;
}

function filterParams() {
  const params = new URLSearchParams({ k: state.k });
  for (const [facet, values] of Object.entries(state.filters)) values.forEach((v) => params.append(facet, v));
  return params;
}

function restoreFromUrl() {
  const params = new URLSearchParams(location.search);
  state.q = params.get("q") || "";
  state.similar = params.get("similar");
  state.photo = null;
  state.filters = {};
  for (const [name, value] of params) {
    if (RESERVED.has(name)) continue;
    (state.filters[name] = state.filters[name] || []).push(value);
  }
  $("query").value = state.q;
  if (maxResults !== null) chooseK(params.get("k")); // at start-up, k waits for /health and its limit
}

// Any whole k of at least 1 is honoured, clamped as the server clamps it, and added to the choices when
// it is not one of them; anything else gives the page's default.
function chooseK(text) {
  const select = $("k");
  const wanted = /^[0-9]+$/.test(text || "") ? Number(text) : 0;
  const fallback = [...select.options].find((o) => o.defaultSelected).value;
  const k = wanted >= 1 ? String(Math.min(wanted, maxResults)) : fallback;
  if (![...select.options].some((o) => o.value === k)) {
    select.add(new Option(k, k), [...select.options].find((o) => Number(o.value) > Number(k)) || null);
  }
  select.value = k;
  state.k = k;
}

function remember() {
  const url = "?" + stateParams().toString();
  if (url !== location.search) history.pushState(null, "", url);
}

// --- filters ---------------------------------------------------------------------------------------

function chosenCount() {
  return Object.values(state.filters).reduce((n, values) => n + values.length, 0);
}

function toggleFilter(facet, value) {
  const values = state.filters[facet] || [];
  state.filters[facet] = values.includes(value) ? values.filter((v) => v !== value) : [...values, value];
  if (!state.filters[facet].length) delete state.filters[facet];
  run();
}

function renderFacets(facets, matching) {
  facetLabels = {};
  valueLabels = {};
  const groups = facets.map((facet) => {
    facetLabels[facet.name] = facet.label;
    valueLabels[facet.name] = Object.fromEntries(facet.values.map((v) => [v.value, v.label]));
    const group = document.createElement("fieldset");
    group.className = "facet";
    const legend = document.createElement("legend");
    legend.textContent = facet.label;
    group.append(legend);
    for (const value of facet.values) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.dataset.facet = facet.name;
      chip.dataset.value = value.value;
      chip.setAttribute("aria-pressed", value.chosen ? "true" : "false");
      chip.textContent = value.label + " ";
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = "(" + value.count.toLocaleString("en") + ")";
      chip.append(count);
      chip.disabled = value.count === 0 && !value.chosen;
      chip.addEventListener("click", () => toggleFilter(facet.name, value.value));
      group.append(chip);
    }
    return group;
  });
  $("filters").replaceChildren(...groups);
  const chosen = chosenCount();
  $("filter-summary").textContent = chosen ? "· " + chosen + " chosen, " + matching.toLocaleString("en") + " images" : "";
  $("clear-filters").hidden = chosen === 0;
  $("filters-box").hidden = facets.length === 0;
}

// --- results and details ---------------------------------------------------------------------------

function describe(result) {
  const parts = Object.entries(result.attributes).map(
    ([facet, values]) => values.map((v) => (valueLabels[facet] || {})[v] || v).join(", "));
  return parts.join(" · ");
}

function altText(result) {
  const text = result.caption || describe(result) || result.image_id;
  return text.length > 180 ? text.slice(0, 177) + "…" : text;
}

function resultCard(result, named) {
  const item = document.createElement("li");
  const open = document.createElement("button");
  open.type = "button";
  open.className = "result";
  // The name a screen reader announces: which result, what it shows (the image's own text), what it does.
  open.setAttribute("aria-label", "Result " + result.rank + ": " + altText(result) + ", open details");
  const image = document.createElement("img");
  image.src = result.url;
  image.alt = altText(result);
  const caption = document.createElement("span");
  caption.className = "caption";
  const rank = document.createElement("span");
  rank.textContent = "#" + result.rank;
  caption.append(rank);
  if (result.score !== null) {
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = result.score.toFixed(3);
    caption.append(score);
  }
  open.append(image, caption);
  open.addEventListener("click", () => openDetail(result, named, open));
  item.append(open);
  return item;
}

function openDetail(result, named, opener) {
  lastOpener = opener;
  $("detail-image").src = result.url;
  $("detail-image").alt = altText(result);
  $("detail-title").textContent = "#" + result.rank + " · " + result.image_id;
  $("detail-caption").textContent = result.caption || "";
  $("detail-caption").hidden = !result.caption;
  const rows = [];
  for (const [facet, values] of Object.entries(result.attributes)) {
    const term = document.createElement("dt");
    term.textContent = facetLabels[facet] || facet;
    const description = document.createElement("dd");
    values.forEach((value, i) => {
      if (i) description.append(", ");
      const isNamed = (named[facet] || []).includes(value);
      const element = document.createElement(isNamed ? "mark" : "span");
      element.textContent = (valueLabels[facet] || {})[value] || value;
      if (isNamed) element.title = "named in your search";
      description.append(element);
    });
    rows.push(term, description);
  }
  $("detail-attributes").replaceChildren(...rows);
  $("more-like-this").onclick = () => {
    $("detail").close();
    state.similar = result.image_id;
    state.q = "";
    state.photo = null;
    $("query").value = "";
    run();
  };
  $("detail").showModal();
  $("more-like-this").focus();
}

function showAnswer(body, what) {
  renderFacets(body.facets, body.matching);
  const named = body.named || {};
  $("results").replaceChildren(...body.results.map((result) => resultCard(result, named)));
  const narrowed = chosenCount() ? " · " + body.matching.toLocaleString("en") + " images match the filters" : "";
  setStatus(body.results.length + " results " + what + " (" + body.model + ")" + narrowed);
  const weak = $("weak-match");
  weak.hidden = body.weak_match !== true;
  weak.textContent = body.weak_match === true
    ? "Nothing in the gallery matches “" + body.query + "” well; these are the closest pictures." : "";
}

// --- searching -------------------------------------------------------------------------------------

async function fetchJson(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || "the search failed (" + response.status + ")");
  return body;
}

async function run(push = true) {
  state.k = $("k").value;
  let request, what;
  if (state.photo) {
    const form = new FormData();
    form.append("image", state.photo, state.photo.name || "photo");
    request = fetchJson("/search/image?" + filterParams(), { method: "POST", body: form });
    what = "like your photo";
  } else if (state.similar) {
    request = fetchJson("/similar/" + encodeURIComponent(state.similar) + "?" + filterParams());
    what = "like " + state.similar;
  } else if (state.q.trim() || chosenCount()) {
    request = fetchJson("/search?" + stateParams(false) + (state.q.trim() ? "&q=" + encodeURIComponent(state.q) : ""));
    what = state.q.trim() ? "for “" + state.q + "”" : "matching the filters";
  } else {
    $("results").replaceChildren();
    $("weak-match").hidden = true;
    setStatus("");
    await showFacets();
    if (push) remember();
    return;
  }
  if (push && !state.photo) remember();
  $("search-button").disabled = true;
  setStatus("Searching…");
  try {
    showAnswer(await request, what);
  } catch (error) {
    setStatus(error.message || "The server did not answer: " + error, true);
  } finally {
    $("search-button").disabled = false;
  }
}

async function showFacets() {
  const body = await fetchJson("/facets?" + filterParams());
  renderFacets(body.facets, body.matching);
}

function searchWords(text) {
  state.q = text;
  state.similar = null;
  state.photo = null;
  if (!text.trim() && !chosenCount()) {
    setStatus("The query is empty: type a few words describing the clothes.", true);
    return;
  }
  run();
}

function searchPhoto(file) {
  if (!file) return;
  state.photo = file;
  state.similar = null;
  state.q = "";
  $("query").value = "";
  run();
}

function exampleButton(text) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "example";
  button.textContent = text;
  button.addEventListener("click", () => {
    $("query").value = text;
    searchWords(text);
  });
  return button;
}

async function showServiceInfo() {
  const info = await fetchJson("/health");
  maxResults = info.max_results;
  $("model").textContent = info.model;
  $("gallery-size").textContent = info.gallery_size.toLocaleString("en");
  $("examples").replaceChildren(...info.examples.map(exampleButton));
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    searchWords($("query").value);
  });
  $("k").addEventListener("change", () => {
    if (state.q || state.similar || state.photo || chosenCount()) run();
  });
  $("photo").addEventListener("change", () => searchPhoto($("photo").files[0]));
  $("clear-filters").addEventListener("click", () => {
    state.filters = {};
    run();
  });
  $("close-detail").addEventListener("click", () => $("detail").close());
  $("detail").addEventListener("close", () => {
    if (lastOpener && document.contains(lastOpener)) lastOpener.focus();
  });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    searchPhoto(event.dataTransfer.files[0]);
  });
  window.addEventListener("popstate", () => {
    restoreFromUrl();
    run(false);
  });
  restoreFromUrl();
  // On a phone the filters start folded away, unless a shared link chose some.
  if (window.matchMedia("(max-width: 600px)").matches && !chosenCount()) $("filters-box").open = false;
  showServiceInfo()
    .then(() => {
      chooseK(new URLSearchParams(location.search).get("k"));
      return run(false);
    })
    .catch((error) => setStatus("The server did not answer: " + error.message, true));
});
