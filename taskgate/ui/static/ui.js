// Taskgate UI: the little that needs script. Pages work without it except the playground's live stream.
"use strict";

// Forms that change something lasting ask first (data-confirm="...").
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// The playground: POST the input as JSON, read the server-sent events and show each delta as it comes.
function readFrames(buffer, onFrame) {
  let index;
  while ((index = buffer.indexOf("\n\n")) >= 0) {
    const frame = buffer.slice(0, index);
    buffer = buffer.slice(index + 2);
    const data = frame.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim()).join("\n");
    if (data) {
      onFrame(data);
    }
  }
  return buffer;
}

async function runPlayground(form) {
  const output = document.getElementById("playground-output");
  const status = document.getElementById("playground-status");
  const input = form.querySelector("textarea[name=input]").value;
  let parsed;
  try {
    parsed = input.trim() === "" ? null : JSON.parse(input);
  } catch (error) {
    parsed = input; // plain text is sent as a JSON string
  }
  output.textContent = "";
  status.textContent = "Calling…";
  const response = await fetch(form.action, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": form.dataset.csrf },
    body: JSON.stringify({ input: parsed }),
  });
  if (!response.ok || !response.body) {
    const text = await response.text();
    status.textContent = "Failed (" + response.status + ")";
    output.textContent = text;
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let spanId = null;
  const fields = {};
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      break;
    }
    buffer = readFrames(buffer + decoder.decode(value, { stream: true }), (data) => {
      if (data === "[DONE]") {
        return;
      }
      const chunk = JSON.parse(data);
      if (chunk.span_id) {
        spanId = chunk.span_id;
      }
      if (chunk.chunk_type === "error") {
        status.textContent = "Error: " + chunk.error_message;
      } else if (chunk.chunk_type === "json" && chunk.json_path) {
        fields[chunk.json_path] = (fields[chunk.json_path] || "") + String(chunk.delta);
        output.textContent = Object.entries(fields).map(([path, text]) => path + ": " + text).join("\n");
      } else if (typeof chunk.delta === "string") {
        output.textContent += chunk.delta;
      }
    });
  }
  if (!status.textContent.startsWith("Error")) {
    status.textContent = "Done";
  }
  if (spanId) {
    const link = document.getElementById("playground-span");
    link.href = "/ui/spans/" + encodeURIComponent(spanId);
    link.hidden = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("playground");
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      runPlayground(form).catch((error) => {
        document.getElementById("playground-status").textContent = "Failed: " + error.message;
      });
    });
  }
});
