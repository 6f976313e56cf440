// The search page: plain DOM calls, no framework, no build step. Text goes in with
// textContent only, so nothing a query or the server returns is ever parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function resultCard(result) {
  const item = document.createElement("li");
  const image = document.createElement("img");
  image.src = result.url;
  image.alt = result.image_id;
  image.title = result.image_id;
  const caption = document.createElement("div");
  caption.className = "caption";
  const rank = document.createElement("span");
  rank.textContent = "#" + result.rank;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = result.score.toFixed(3);
  caption.append(rank, score);
  item.append(image, caption);
  return item;
}

async function search(query) {
  if (!query.trim()) {
    setStatus("The query is empty: type a few words describing the clothes.", true);
    return;
  }
  const k = $("k").value;
  $("search-button").disabled = true;
  setStatus("Searching…");
  try {
    const response = await fetch("/search?" + new URLSearchParams({ q: query, k }));
    const body = await response.json();
    if (!response.ok) {
      setStatus(body.detail || "The search failed.", true);
      return;
    }
    $("results").replaceChildren(...body.results.map(resultCard));
    setStatus(body.results.length + " results for “" + body.query + "” (" + body.model + ")");
  } catch (error) {
    setStatus("The server did not answer: " + error, true);
  } finally {
    $("search-button").disabled = false;
  }
}

function exampleButton(text) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "example";
  button.textContent = text;
  button.addEventListener("click", () => {
    $("query").value = text;
    search(text);
  });
  return button;
}

async function showServiceInfo() {
  const response = await fetch("/health");
  const info = await response.json();
  $("model").textContent = info.model;
  $("gallery-size").textContent = info.gallery_size.toLocaleString("en");
  $("examples").replaceChildren(...info.examples.map(exampleButton));
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search($("query").value);
  });
  showServiceInfo().catch((error) => setStatus("The server did not answer: " + error, true));
});
