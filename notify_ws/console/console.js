// TaskFlow developer console: plain browser JS, no build step.
// Talks to the task API (CORS) with a bearer token and watches /ws on this origin.
"use strict";

const $ = (id) => document.getElementById(id);
let socket = null;

function log(message) {
  const line = `${new Date().toISOString()} ${message}\n`;
  $("log").textContent = (line + $("log").textContent).slice(0, 4000);
}

function token() {
  return $("token").value.trim();
}

function apiBase() {
  return $("api-base").value.trim().replace(/\/+$/, "");
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["Idempotency-Key"] = crypto.randomUUID();
  const response = await fetch(apiBase() + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${data ? data.detail || data.title : ""}`);
  }
  return data;
}

async function generateToken() {
  const response = await fetch("/console/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: $("user").value.trim() }),
  });
  const data = await response.json();
  if (!response.ok) {
    log(`token: ${response.status} ${data.detail || data.title}`);
    return;
  }
  $("token").value = data.token;
  log(`token for ${data.user} (valid ${data.expires_in} s)`);
  connect();
}

function renderTask(task) {
  const li = document.createElement("li");
  li.dataset.id = task.id;
  li.className = task.status;
  li.textContent = `${task.title} `;
  if (task.status === "open") {
    const done = document.createElement("button");
    done.textContent = "Complete";
    done.className = "complete";
    done.addEventListener("click", () => completeTask(task.id));
    li.appendChild(done);
  }
  return li;
}

async function refreshTasks() {
  try {
    const page = await api("GET", "/api/v1/tasks?status=all&limit=200");
    $("tasks").replaceChildren(...page.items.map(renderTask));
  } catch (error) {
    log(error.message);
  }
}

async function createTask(event) {
  event.preventDefault();
  const body = { title: $("task-title").value.trim() };
  const remind = Number($("task-remind").value);
  if (remind > 0) {
    body.reminders = [{ at: new Date(Date.now() + remind * 1000).toISOString() }];
  }
  try {
    const task = await api("POST", "/api/v1/tasks", body);
    log(`created task ${task.id}`);
    $("task-title").value = "";
    await refreshTasks();
  } catch (error) {
    log(error.message);
  }
}

async function completeTask(id) {
  try {
    await api("POST", `/api/v1/tasks/${id}/complete`);
    log(`completed task ${id}`);
    await refreshTasks();
  } catch (error) {
    log(error.message);
  }
}

function renderNotification(n) {
  const li = document.createElement("li");
  li.dataset.id = n.id;
  li.dataset.kind = n.kind;
  li.dataset.seq = String(n.seq);
  li.className = n.read ? "read" : "unread";
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = n.kind;
  li.append(kind, `${n.title}${n.body ? ": " + n.body : ""}`);
  li.addEventListener("click", () => markRead([n.id]));
  return li;
}

function onFrame(frame) {
  if (frame.type === "notification") {
    const inbox = $("inbox");
    const existing = inbox.querySelector(`li[data-id="${frame.notification.id}"]`);
    const li = renderNotification(frame.notification);
    if (existing) existing.replaceWith(li);
    else inbox.prepend(li);
  } else if (frame.type === "unread_count") {
    $("unread").textContent = String(frame.count);
  } else if (frame.type === "error") {
    log(`socket error: ${frame.detail}`);
  }
}

function markRead(ids) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "read", ids }));
    for (const id of ids) {
      const li = $("inbox").querySelector(`li[data-id="${id}"]`);
      if (li) li.className = "read";
    }
  }
}

function connect() {
  if (socket) socket.close();
  $("inbox").replaceChildren();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // since=0 replays the whole inbox, then live notifications follow.
  const url = `${scheme}://${location.host}/ws?token=${encodeURIComponent(token())}&since=0`;
  const ws = new WebSocket(url);
  socket = ws;
  $("ws-status").textContent = "connecting";
  ws.addEventListener("open", () => {
    $("ws-status").textContent = "connected";
    refreshTasks();
  });
  ws.addEventListener("message", (event) => onFrame(JSON.parse(event.data)));
  ws.addEventListener("close", (event) => {
    if (socket === ws) $("ws-status").textContent = `closed (${event.code})`;
  });
}

$("generate").addEventListener("click", generateToken);
$("connect").addEventListener("click", connect);
$("refresh").addEventListener("click", refreshTasks);
$("new-task").addEventListener("submit", createTask);
$("read-all").addEventListener("click", () => {
  const ids = [...$("inbox").querySelectorAll("li.unread")].map((li) => li.dataset.id);
  if (ids.length) markRead(ids);
});
