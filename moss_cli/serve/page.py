"""The page at `/`: pick a file and a task, see moss's report page for it (POST /report)."""

UPLOAD_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moss</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }
label { display: block; margin: 1rem 0 .25rem; } button { margin-top: 1.5rem; padding: .4rem 1.2rem; }
#status { margin-top: 1rem; color: #555; white-space: pre-wrap; }
</style></head>
<body>
<h1>moss</h1>
<p>Upload a recording to see its transcript, events or description beside a player.</p>
<form id="upload">
<label for="file">Audio or video file</label><input id="file" name="file" type="file" required>
<label for="task">Task</label>
<select id="task" name="task">
<option value="transcribe">Transcribe</option><option value="events">Sound events</option>
<option value="caption">Caption</option><option value="describe-music">Describe music</option>
<option value="summarize">Summarize</option>
</select>
<label for="key">API key (if the server asks for one)</label><input id="key" type="password" autocomplete="off">
<br><button type="submit">Analyse</button>
</form>
<div id="status" role="status"></div>
<p>The API: <code>POST /v1/audio/transcriptions</code> as OpenAI defines it; <a href="/docs">all routes</a>.</p>
<script>
document.getElementById("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = document.getElementById("status");
  const body = new FormData();
  body.append("file", document.getElementById("file").files[0]);
  body.append("task", document.getElementById("task").value);
  const key = document.getElementById("key").value;
  status.textContent = "Working...";
  const reply = await fetch("/report", {method: "POST", body, headers: key ? {Authorization: "Bearer " + key} : {}});
  if (!reply.ok) {
    const error = await reply.json().catch(() => ({error: {message: reply.statusText}}));
    status.textContent = "Error: " + error.error.message;
    return;
  }
  const page = await reply.text();
  document.open(); document.write(page); document.close();
});
</script>
</body></html>
"""
