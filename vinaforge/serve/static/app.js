// vinaforge web chat: streams from /v1/chat/completions. No dependencies, no CDN.
// Safety: user and model text is only ever inserted with textContent / createTextNode,
// never innerHTML, so a <script> or an onerror= in an answer is shown as text and never runs.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { history: [], controller: null, model: null, turn: 0 };

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Minimal, safe Markdown: ``` fenced code ```, `inline code`, **bold**, and "[đoạn k]" citation links.
function renderInline(parent, text, turn) {
  const re = /(`[^`\n]+`|\*\*[^*\n]+\*\*|\[\s*đoạn\s+\d+\s*\])/giu;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
    const tok = m[0];
    if (tok.startsWith("`")) parent.appendChild(el("code", null, tok.slice(1, -1)));
    else if (tok.startsWith("**")) parent.appendChild(el("strong", null, tok.slice(2, -2)));
    else {
      const k = tok.match(/\d+/)[0];
      const a = el("a", "cite", tok);
      a.href = "#p-" + turn + "-" + k;
      parent.appendChild(a);
    }
    last = m.index + tok.length;
  }
  if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
}

function renderMarkdown(node, text, turn) {
  node.replaceChildren();
  const parts = text.split("```");
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const pre = el("pre");
      pre.appendChild(el("code", null, part.replace(/^[\w-]*\n/, "")));
      node.appendChild(pre);
    } else {
      renderInline(node, part, turn);
    }
  });
}

function addMessage(role, text) {
  const node = el("div", "msg " + role);
  if (role === "assistant") renderMarkdown(node, text, state.turn); else node.textContent = text;
  $("messages").appendChild(node);
  node.scrollIntoView({ block: "end" });
  return node;
}

function showPassages(node, extra, turn) {
  if (!extra || !extra.passages) return;
  const box = el("div", "passages");
  box.appendChild(el("strong", null, "Nguồn:"));
  const list = el("ol");
  list.start = 0;
  for (const p of extra.passages) {
    const li = el("li", null, (p.title ? p.title + ": " : "") + p.text);
    li.id = "p-" + turn + "-" + p.k;
    list.appendChild(li);
  }
  box.appendChild(list);
  const check = extra.citations && extra.citations[0];
  if (check && check.flag) box.appendChild(el("div", "flag", "⚠ " + check.flag));
  node.appendChild(box);
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const body = await r.json();
    if (r.ok && body.data && body.data.length) {
      state.model = body.data[0].id;
      $("model").textContent = state.model;
    } else {
      $("status").textContent = (body.error && body.error.message) || "không tải được danh sách mô hình";
    }
  } catch (e) {
    $("status").textContent = "không kết nối được máy chủ";
  }
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

async function send(question) {
  if (!state.model) await loadModel();
  state.turn += 1;
  const turn = state.turn;
  addMessage("user", question);
  state.history.push({ role: "user", content: question });
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...state.history);
  const body = {
    model: state.model, messages, stream: true,
    temperature: parseFloat($("temperature").value),
    max_tokens: parseInt($("max-tokens").value, 10) || 256,
  };
  if ($("rag").checked) body.rag = true;
  const node = addMessage("assistant", "");
  let text = "";
  let extra = null;
  let failed = false;
  state.controller = new AbortController();
  setBusy(true);
  $("status").textContent = "đang trả lời…";
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: state.controller.signal,
    });
    if (!r.ok) {
      const err = await r.json().catch(() => ({}));
      throw new Error((err.error && err.error.message) || ("HTTP " + r.status));
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          for (const c of chunk.choices || []) {
            if (c.delta && c.delta.content) text += c.delta.content;
          }
          if (chunk.vinaforge) extra = chunk.vinaforge;
          renderMarkdown(node, text, turn);
          node.scrollIntoView({ block: "end" });
        }
      }
    }
    $("status").textContent = "";
  } catch (e) {
    if (e.name === "AbortError") {
      $("status").textContent = "đã dừng";
    } else {
      failed = true;
      node.classList.add("error");
      $("status").textContent = "lỗi: " + e.message;
    }
  } finally {
    state.controller = null;
    setBusy(false);
  }
  renderMarkdown(node, text, turn);
  showPassages(node, extra, turn);
  node.dataset.done = "1";
  if (failed) state.history.pop();  // the question goes unanswered: do not send it again as history
  else state.history.push({ role: "assistant", content: text });
}

document.addEventListener("DOMContentLoaded", () => {
  $("temperature").addEventListener("input", () => { $("temperature-value").textContent = $("temperature").value; });
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("input").value.trim();
    if (!q || state.controller) return;
    $("input").value = "";
    send(q);
  });
  $("input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("composer").requestSubmit(); }
  });
  $("stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
  $("reset").addEventListener("click", () => { state.history = []; $("messages").replaceChildren(); });
  $("api-key").addEventListener("change", loadModel);
  loadModel();
});
