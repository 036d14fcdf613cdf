// dsv4 web chat: a single page talking to this server's DeepSeek API (POST chat/completions, SSE).
// Plain browser JavaScript, no build step, no network beyond this origin. Conversations and
// settings live in localStorage. Model text is always inserted as text, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const CHATS_KEY = 'dsv4.chats';
const SETTINGS_KEY = 'dsv4.settings';
// USD per 1M tokens (api spec §10, prices for most of the V4 window); aliases bill as Flash.
const PRICES = {
  'deepseek-v4-flash': { hit: 0.0028, miss: 0.14, out: 0.28 },
  'deepseek-v4-pro': { hit: 0.003625, miss: 0.435, out: 0.87 },
};
const DEFAULT_SETTINGS = { model: 'deepseek-v4-flash', thinking: true, effort: 'high', temperature: 1, maxTokens: '', system: '', tools: '', apiKey: '' };

const state = {
  chats: loadJson(CHATS_KEY, []),
  settings: { ...DEFAULT_SETTINGS, ...loadJson(SETTINGS_KEY, {}) },
  currentId: null,
  controller: null,
};

function loadJson(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key) || 'null');
    return v ?? fallback;
  } catch {
    return fallback;
  }
}
function saveChats() {
  try {
    localStorage.setItem(CHATS_KEY, JSON.stringify(state.chats));
  } catch (e) {
    console.warn('dsv4: could not save conversations', e);
  }
}
function saveSettings() {
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(state.settings));
}
function currentChat() {
  return state.chats.find((c) => c.id === state.currentId);
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- conversations -------------------------------------------------------------------------

function newChat() {
  const chat = { id: `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`, title: 'New chat', messages: [], updated: Date.now() };
  state.chats.unshift(chat);
  state.currentId = chat.id;
  saveChats();
  renderAll();
  $('prompt').focus();
}

function renderSidebar() {
  const list = $('conversations');
  list.replaceChildren();
  for (const chat of state.chats) {
    const li = el('li', chat.id === state.currentId ? 'active' : '');
    li.dataset.id = chat.id;
    li.append(el('span', '', chat.title));
    const del = el('button', '', '×');
    del.title = 'Delete conversation';
    del.onclick = (ev) => {
      ev.stopPropagation();
      state.chats = state.chats.filter((c) => c.id !== chat.id);
      if (state.currentId === chat.id) state.currentId = state.chats[0]?.id ?? null;
      saveChats();
      renderAll();
    };
    li.append(del);
    li.onclick = () => {
      if (state.controller) return;
      state.currentId = chat.id;
      renderAll();
    };
    list.append(li);
  }
}

function renderAll() {
  if (!currentChat()) {
    if (state.chats.length) state.currentId = state.chats[0].id;
    else return newChat();
  }
  renderSidebar();
  const chat = currentChat();
  $('chat-title').textContent = chat.title;
  const box = $('messages');
  box.replaceChildren(...chat.messages.map((m, i) => renderMessage(chat, m, i)));
  renderTotals(chat);
  box.scrollTop = box.scrollHeight;
}

// ---- messages ------------------------------------------------------------------------------

function renderMessage(chat, m, index) {
  const div = el('div', `msg ${m.role}`);
  div.dataset.index = String(index);
  if (m.role === 'tool') {
    div.append(el('div', 'content', `↳ ${m.content}`));
    return div;
  }
  if (m.streaming && !m.content && !m.reasoning_content && !m.tool_calls) div.append(el('div', 'muted waiting', 'Reading the prompt…'));
  if (m.role === 'assistant' && m.reasoning_content) div.append(renderThinking(m));
  if (m.content || m.role === 'user') div.append(renderContent(m.content || ''));
  for (const call of m.tool_calls || []) div.append(renderToolCall(chat, m, call));
  if (m.error) div.append(el('div', 'error', m.error));
  if (m.role === 'assistant' && (m.usage || m.finish)) div.append(el('div', 'usage muted', usageText(m)));
  return div;
}

function renderThinking(m) {
  const d = el('details', 'thinking');
  const streamingThoughts = m.streaming && !m.content && !(m.tool_calls || []).length;
  d.open = m.thinkingOpen ?? streamingThoughts;
  const secs = m.thinkingMs ? ` for ${(m.thinkingMs / 1000).toFixed(1)} s` : '';
  const summary = el('summary', '', streamingThoughts ? 'Thinking…' : `Thought${secs}`);
  // Remember only the user's choice ('toggle' also fires when the page sets `open`).
  summary.addEventListener('click', () => {
    m.thinkingOpen = !d.open;
  });
  d.append(summary, el('div', 'text', m.reasoning_content));
  return d;
}

/** Text with ``` fenced blocks shown as code; everything inserted as text. */
function renderContent(text) {
  const div = el('div', 'content');
  text.split('```').forEach((part, i) => {
    if (i % 2 === 0) {
      if (part) div.append(document.createTextNode(part));
      return;
    }
    const nl = part.indexOf('\n');
    const pre = el('pre');
    pre.append(el('code', '', nl >= 0 ? part.slice(nl + 1) : part));
    div.append(pre);
  });
  return div;
}

function renderToolCall(chat, m, call) {
  const box = el('div', 'tool-call');
  box.append(el('span', 'name', `⚙ ${call.function.name}`));
  let args = call.function.arguments;
  try {
    args = JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    // partial or invalid JSON: show as sent
  }
  box.append(el('pre', '', args));
  const answered = chat.messages.some((x) => x.role === 'tool' && x.tool_call_id === call.id);
  if (!m.streaming && !answered) {
    const form = el('form');
    const input = el('input');
    input.placeholder = 'Tool result to send back…';
    input.className = 'tool-result';
    const btn = el('button', '', 'Send result');
    btn.type = 'submit';
    form.append(input, btn);
    form.onsubmit = (ev) => {
      ev.preventDefault();
      if (state.controller) return;
      chat.messages.push({ role: 'tool', tool_call_id: call.id, content: input.value });
      saveChats();
      const pending = (m.tool_calls || []).some((c) => !chat.messages.some((x) => x.role === 'tool' && x.tool_call_id === c.id));
      if (pending) renderAll();
      else generate(chat);
    };
    box.append(form);
  }
  return box;
}

// ---- usage and cost ------------------------------------------------------------------------

function priceOf(model) {
  return PRICES[model] || PRICES['deepseek-v4-flash'];
}
function costOf(model, u) {
  if (!u) return 0;
  const p = priceOf(model);
  const hit = u.prompt_cache_hit_tokens ?? u.prompt_tokens_details?.cached_tokens ?? 0;
  const miss = u.prompt_cache_miss_tokens ?? u.prompt_tokens - hit;
  return (hit * p.hit + miss * p.miss + u.completion_tokens * p.out) / 1e6;
}
function money(x) {
  return x === 0 ? '$0' : x < 0.01 ? `$${x.toPrecision(2)}` : `$${x.toFixed(4)}`;
}
function usageText(m) {
  const parts = [];
  if (m.finish && m.finish !== 'stop' && m.finish !== 'tool_calls') parts.push(`[${m.finish}]`);
  const u = m.usage;
  if (u) {
    const hit = u.prompt_cache_hit_tokens ?? 0;
    const reasoning = u.completion_tokens_details?.reasoning_tokens ?? 0;
    parts.push(
      `${u.prompt_tokens} prompt (${hit} cache hit)`,
      `${u.completion_tokens} completion${reasoning ? ` (${reasoning} thinking)` : ''}`,
      money(costOf(m.model, u)),
    );
    if (m.elapsedMs) parts.push(`${((u.completion_tokens * 1000) / m.elapsedMs).toFixed(1)} tok/s`);
  }
  return parts.join(' · ');
}
function renderTotals(chat) {
  let prompt = 0, hit = 0, out = 0, cost = 0;
  for (const m of chat.messages) {
    if (!m.usage) continue;
    prompt += m.usage.prompt_tokens;
    hit += m.usage.prompt_cache_hit_tokens ?? 0;
    out += m.usage.completion_tokens;
    cost += costOf(m.model, m.usage);
  }
  $('totals').textContent = prompt ? `${prompt} in (${hit} cached) · ${out} out · ${money(cost)}` : '';
}

// ---- talking to the API --------------------------------------------------------------------

function headers() {
  const h = { 'content-type': 'application/json' };
  if (state.settings.apiKey) h.authorization = `Bearer ${state.settings.apiKey}`;
  return h;
}

/** Messages as the API takes them: UI fields stripped (api spec §4.2). */
function apiMessages(chat) {
  const out = [];
  if (state.settings.system.trim()) out.push({ role: 'system', content: state.settings.system });
  for (const m of chat.messages) {
    if (m.role === 'assistant' && m.error && !m.content && !m.tool_calls) continue;
    const x = { role: m.role, content: m.content ?? '' };
    if (m.reasoning_content) x.reasoning_content = m.reasoning_content;
    if (m.tool_calls?.length) x.tool_calls = m.tool_calls.map(({ id, type, function: f }) => ({ id, type, function: f }));
    if (m.tool_call_id) x.tool_call_id = m.tool_call_id;
    out.push(x);
  }
  return out;
}

function requestBody(chat) {
  const s = state.settings;
  const body = { model: s.model, messages: apiMessages(chat), stream: true, stream_options: { include_usage: true } };
  body.thinking = { type: s.thinking ? 'enabled' : 'disabled' };
  if (s.thinking) body.reasoning_effort = s.effort;
  else body.temperature = Number(s.temperature);
  if (s.maxTokens) body.max_tokens = Number(s.maxTokens);
  if (s.tools.trim()) body.tools = JSON.parse(s.tools);
  return body;
}

/** Yields the data payload of each server-sent event. */
async function* sseData(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const lines = buf.slice(0, end).split('\n').filter((l) => l.startsWith('data:'));
      buf = buf.slice(end + 2);
      if (lines.length) yield lines.map((l) => l.replace(/^data: ?/, '')).join('\n');
    }
  }
}

async function generate(chat) {
  let body;
  try {
    body = requestBody(chat);
  } catch (e) {
    alert(`Tools must be a JSON array: ${e.message}`);
    return;
  }
  const m = { role: 'assistant', content: '', model: state.settings.model, streaming: true };
  chat.messages.push(m);
  const index = chat.messages.length - 1;
  const started = performance.now();
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  renderAll();
  let frame = 0;
  const redraw = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      const box = $('messages');
      const old = box.querySelector(`.msg[data-index="${index}"]`);
      if (old && state.currentId === chat.id) old.replaceWith(renderMessage(chat, m, index));
      box.scrollTop = box.scrollHeight;
    });
  };
  try {
    const res = await fetch('chat/completions', { method: 'POST', headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!res.ok) throw new Error(await errorMessage(res));
    for await (const data of sseData(res)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data);
      if (chunk.usage) m.usage = chunk.usage;
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      const d = choice.delta || {};
      if (d.reasoning_content) m.reasoning_content = (m.reasoning_content || '') + d.reasoning_content;
      if ((d.content || d.tool_calls) && m.reasoning_content && !m.thinkingMs) m.thinkingMs = performance.now() - started;
      if (d.content) m.content += d.content;
      for (const tc of d.tool_calls || []) {
        m.tool_calls = m.tool_calls || [];
        const call = (m.tool_calls[tc.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
        if (tc.id) call.id = tc.id;
        if (tc.function?.name) call.function.name += tc.function.name;
        if (tc.function?.arguments) call.function.arguments += tc.function.arguments;
      }
      if (choice.finish_reason) m.finish = choice.finish_reason;
      redraw();
    }
  } catch (e) {
    if (controller.signal.aborted) m.finish = 'stopped';
    else m.error = e.message || String(e);
  }
  if (m.reasoning_content && !m.thinkingMs) m.thinkingMs = performance.now() - started;
  m.elapsedMs = performance.now() - started;
  delete m.streaming;
  if (frame) cancelAnimationFrame(frame);
  state.controller = null;
  chat.updated = Date.now();
  saveChats();
  setBusy(false);
  renderAll();
}

async function errorMessage(res) {
  const text = await res.text();
  let msg = text.slice(0, 300);
  try {
    msg = JSON.parse(text).error?.message || msg;
  } catch {
    // not JSON
  }
  const hint = res.status === 401 ? ' — set the API key under Settings › More' : '';
  return `Error ${res.status}: ${msg}${hint}`;
}

function setBusy(busy) {
  document.body.dataset.state = busy ? 'streaming' : 'idle';
  $('send').hidden = busy;
  $('stop').hidden = !busy;
}

function send() {
  const text = $('prompt').value;
  if (!text.trim() || state.controller) return;
  const chat = currentChat();
  chat.messages.push({ role: 'user', content: text });
  if (chat.title === 'New chat') chat.title = text.trim().split('\n')[0].slice(0, 48);
  $('prompt').value = '';
  generate(chat);
}

// ---- settings ------------------------------------------------------------------------------

async function loadModels() {
  const select = $('setting-model');
  let ids = Object.keys(PRICES);
  try {
    const res = await fetch('models', { headers: headers() });
    if (res.ok) ids = (await res.json()).data.map((m) => m.id);
  } catch {
    // keep the defaults
  }
  select.replaceChildren(...ids.map((id) => el('option', '', id)));
  if (!ids.includes(state.settings.model)) state.settings.model = ids[0];
  select.value = state.settings.model;
}

function bindSettings() {
  const s = state.settings;
  const bind = (id, key, read) => {
    const input = $(id);
    if (input.type === 'checkbox') input.checked = s[key];
    else input.value = s[key];
    input.addEventListener(input.type === 'range' || input.tagName === 'TEXTAREA' || input.type === 'number' ? 'input' : 'change', () => {
      s[key] = read(input);
      saveSettings();
      syncSettings();
    });
  };
  bind('setting-model', 'model', (i) => i.value);
  bind('setting-thinking', 'thinking', (i) => i.checked);
  bind('setting-effort', 'effort', (i) => i.value);
  bind('setting-temperature', 'temperature', (i) => Number(i.value));
  bind('setting-max-tokens', 'maxTokens', (i) => i.value);
  bind('setting-system', 'system', (i) => i.value);
  bind('setting-tools', 'tools', (i) => i.value);
  bind('setting-api-key', 'apiKey', (i) => i.value);
  syncSettings();
}

/** Sampling knobs have no effect while thinking (api spec §5.3), effort none without it. */
function syncSettings() {
  const s = state.settings;
  $('setting-effort').disabled = !s.thinking;
  $('setting-temperature').disabled = s.thinking;
  $('setting-temperature').title = s.thinking ? 'Temperature has no effect in thinking mode' : '';
  $('temperature-value').textContent = String(s.temperature);
}

// ---- start ---------------------------------------------------------------------------------

function start() {
  $('server-info').textContent = location.host;
  $('new-chat').onclick = () => {
    if (!state.controller) newChat();
  };
  $('composer').onsubmit = (ev) => {
    ev.preventDefault();
    send();
  };
  $('prompt').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  $('stop').onclick = () => state.controller?.abort();
  $('menu').onclick = () => document.body.classList.toggle('show-sidebar');
  $('messages').addEventListener('click', () => document.body.classList.remove('show-sidebar'));
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') state.controller?.abort();
  });
  // Drop half-streamed messages left by a closed tab.
  for (const c of state.chats) for (const m of c.messages) delete m.streaming;
  bindSettings();
  setBusy(false);
  renderAll();
  loadModels();
}

start();
