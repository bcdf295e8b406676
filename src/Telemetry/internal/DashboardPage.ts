/**
 * The dashboard's one page: HTML, CSS and a script in one string, served as is (nothing to
 * build, no framework). Hash routes (`#/cluster`, `#/actors`, `#/actor/<type>/<id>`,
 * `#/reminders`) pick what it draws; it polls the route's JSON once a second (not while the
 * tab is hidden, never two requests at once) and keeps two minutes of samples for the
 * charts. Everything from the server is escaped before it is drawn.
 *
 * @internal
 */

const style = `
:root { color-scheme: light dark; --fg: #1d2330; --muted: #6b7385; --bg: #f6f7f9; --card: #fff; --line: #dde1e8; --accent: #3559e0; --ok: #1f9d55; --warn: #c98a00; --bad: #d2343f; }
@media (prefers-color-scheme: dark) { :root { --fg: #e4e7ee; --muted: #9aa3b5; --bg: #14171d; --card: #1c2028; --line: #2d333f; --accent: #7d98ff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 18px; align-items: center; padding: 10px 20px; background: var(--card); border-bottom: 1px solid var(--line); flex-wrap: wrap; }
header h1 { font-size: 16px; margin: 0; }
nav a { margin-right: 14px; color: var(--muted); text-decoration: none; font-weight: 600; }
nav a.on { color: var(--accent); }
form { display: flex; gap: 6px; margin-left: auto; }
input { padding: 4px 8px; border: 1px solid var(--line); border-radius: 4px; background: var(--bg); color: var(--fg); width: 140px; }
button { padding: 4px 10px; border: 1px solid var(--line); border-radius: 4px; background: var(--card); color: var(--fg); cursor: pointer; }
button.danger { color: var(--bad); }
main { padding: 16px 20px; display: grid; gap: 16px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; overflow-x: auto; }
h2 { font-size: 14px; margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 10px 4px 0; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; }
td.n, th.n { text-align: right; }
.status { font-weight: 600; }
.alive { color: var(--ok); } .suspected { color: var(--warn); } .dead, .left { color: var(--bad); }
.muted { color: var(--muted); }
.heat { display: flex; gap: 6px; flex-wrap: wrap; }
.cell { min-width: 120px; padding: 8px; border-radius: 4px; color: #fff; font-size: 12px; }
.err { color: var(--bad); }
svg { width: 100%; height: 160px; }
.legend span { margin-right: 12px; font-size: 12px; }
`

const script = `
(function () {
  'use strict';
  var palette = ['#3559e0', '#1f9d55', '#d2343f', '#c98a00', '#8e44ad', '#16a085', '#e67e22', '#7f8c8d'];
  var samples = [];
  var inFlight = false;
  var lastError = '';
  var main = document.getElementById('main');
  // The token, once given in the address, lives on as a cookie: out of the address bar.
  if (location.search.indexOf('token=') >= 0) window.history.replaceState(null, '', location.pathname + location.hash);

  function esc(v) { return String(v === undefined || v === null ? '' : v).replace(/[&<>"']/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]; }); }
  function num(v, digits) { return v === undefined ? '<span class="muted">–</span>' : Number(v).toFixed(digits === undefined ? 0 : digits); }
  function pct(v) { return v === undefined ? '<span class="muted">–</span>' : (v * 100).toFixed(1) + ' %'; }
  function bytes(v) { return v === undefined ? '<span class="muted">–</span>' : (v / 1048576).toFixed(0) + ' MiB'; }
  function ago(ms) { if (ms === undefined) return '<span class="muted">–</span>'; var s = Math.floor(ms / 1000); if (s < 120) return s + ' s'; var m = Math.floor(s / 60); if (m < 120) return m + ' min'; return Math.floor(m / 60) + ' h ' + (m % 60) + ' min'; }
  function route() { var h = location.hash.replace(/^#\\/?/, '').split('/'); return { page: h[0] || 'cluster', rest: h.slice(1).map(decodeURIComponent) }; }
  function get(path) { return fetch(path, { credentials: 'same-origin' }).then(function (r) { return r.json().then(function (b) { if (!r.ok && b && b.error) throw new Error(b.error); return b; }); }); }
  function post(path) { return fetch(path, { method: 'POST', credentials: 'same-origin', headers: { 'x-quark-dashboard': '1' } }).then(function (r) { return r.json(); }); }

  function chart(series, unit) {
    var w = 600, h = 150, max = 1;
    series.forEach(function (s) { s.points.forEach(function (p) { if (p > max) max = p; }); });
    var lines = series.map(function (s, i) {
      var n = s.points.length;
      var pts = s.points.map(function (p, j) { return (n < 2 ? 0 : (j * w / 119) + (120 - n) * w / 119).toFixed(1) + ',' + (h - p / max * (h - 10)).toFixed(1); }).join(' ');
      return '<polyline fill="none" stroke-width="2" stroke="' + palette[i % palette.length] + '" points="' + pts + '"/>';
    }).join('');
    var legend = series.map(function (s, i) { return '<span style="color:' + palette[i % palette.length] + '">■ ' + esc(s.name) + '</span>'; }).join('');
    return '<svg viewBox="0 0 ' + w + ' ' + h + '" preserveAspectRatio="none"><line x1="0" y1="' + h + '" x2="' + w + '" y2="' + h + '" stroke="currentColor" opacity=".2"/>' + lines +
      '<text x="4" y="12" font-size="11" fill="currentColor" opacity=".6">' + num(max, max < 10 ? 1 : 0) + ' ' + esc(unit) + '</text></svg><div class="legend">' + legend + '</div>';
  }

  function record(o) {
    var perSilo = {};
    o.silos.forEach(function (s) { if (s.activations !== undefined && (s.status === 'alive' || s.status === 'suspected')) perSilo[s.id] = s.activations; });
    samples.push({ turns: o.turnsPerSecond, perSilo: perSilo });
    if (samples.length > 120) samples.shift();
  }

  function clusterPage(o) {
    var rows = o.silos.map(function (s) {
      return '<tr data-silo="' + esc(s.id) + '"><td>' + esc(s.id) + (s.self ? ' <span class="muted">(this process)</span>' : '') + '</td>' +
        '<td class="status ' + esc(s.status) + '">' + esc(s.status) + (s.draining && (s.status === "alive" || s.status === "suspected") ? " (draining)" : "") + '</td>' +
        '<td class="n">' + esc(s.generation === undefined ? '' : s.generation) + '</td><td class="n">' + (s.goneAtMillis !== undefined ? 'gone ' + ago(o.now - s.goneAtMillis) + ' ago' : ago(s.uptimeMillis)) + '</td>' +
        '<td class="n">' + num(s.activations) + '</td><td class="n">' + num(s.turnsPerSecond) + '</td><td class="n">' + pct(s.cpu) + '</td>' +
        '<td class="n">' + num(s.lagMillis, 1) + '</td><td class="n">' + bytes(s.memoryBytes) + '</td><td class="n">' + pct(s.share) + '</td></tr>';
    }).join('');
    var ids = {};
    samples.forEach(function (h) { Object.keys(h.perSilo).forEach(function (id) { ids[id] = true; }); });
    var activationSeries = Object.keys(ids).sort().map(function (id) { return { name: id, points: samples.map(function (h) { return h.perSilo[id] || 0; }) }; });
    return '<section><h2>Silos <span class="muted">(' + (o.clustered ? 'membership view of ' + esc(o.silo) : 'a silo outside a cluster') + ')</span></h2>' +
      '<table id="silos"><thead><tr><th>silo</th><th>status</th><th class="n">generation</th><th class="n">uptime</th><th class="n">activations</th><th class="n">turns/s</th><th class="n">CPU</th><th class="n">lag p99 ms</th><th class="n">memory</th><th class="n">ring share</th></tr></thead><tbody>' + rows + '</tbody></table>' +
      '<p class="muted">Load figures are each silo\\'s last report (every 5 s by default); turns/s is this process\\'s own.</p></section>' +
      '<section><h2>Turns per second (this process)</h2>' + chart([{ name: o.silo, points: samples.map(function (h) { return h.turns || 0; }) }], 'turns/s') + '</section>' +
      '<section><h2>Activations per silo</h2>' + chart(activationSeries, 'activations') + '</section>';
  }

  function actorsPage(o) {
    var types = o.types.map(function (t) {
      return '<tr data-type="' + esc(t.type) + '"><td>' + esc(t.type) + '</td><td class="n">' + num(t.activations) + '</td><td class="n">' + num(t.mailboxDepth) + '</td><td class="n">' + num(t.turnsPerSecond, 1) + '</td><td class="n">' + num(t.p50Millis, 3) + '</td><td class="n">' + num(t.p99Millis, 3) + '</td></tr>';
    }).join('') || '<tr><td colspan="6" class="muted">no activations here</td></tr>';
    var messages = o.messages.map(function (m) {
      return '<tr><td>' + esc(m.type) + '</td><td>' + esc(m.message) + '</td><td class="n">' + num(m.count) + '</td><td class="n">' + num(m.failures) + '</td><td class="n">' + num(m.turnsPerSecond, 1) + '</td><td class="n">' + num(m.p50Millis, 3) + '</td><td class="n">' + num(m.p99Millis, 3) + '</td></tr>';
    }).join('') || '<tr><td colspan="7" class="muted">no profiler in this process (Profiler.layer())</td></tr>';
    var live = o.silos.filter(function (s) { return s.status === 'alive' || s.status === 'suspected'; });
    var max = 1;
    live.forEach(function (s) { if ((s.activations || 0) > max) max = s.activations; });
    var heat = live.map(function (s) {
      var a = s.activations || 0, x = a / max;
      return '<div class="cell" data-heat="' + esc(s.id) + '" style="background: rgba(210,52,63,' + (0.15 + 0.85 * x).toFixed(2) + ')"><b>' + num(s.activations) + '</b><br>' + esc(s.id) + '</div>';
    }).join('');
    return '<section><h2>Actor types on ' + esc(o.silo) + '</h2><table id="types"><thead><tr><th>type</th><th class="n">activations</th><th class="n">mailbox depth</th><th class="n">turns/s</th><th class="n">p50 ms</th><th class="n">p99 ms</th></tr></thead><tbody>' + types + '</tbody></table></section>' +
      '<section><h2>Activations across silos</h2><div class="heat">' + heat + '</div></section>' +
      '<section><h2>Latency by message <span class="muted">(profiler window)</span></h2><table><thead><tr><th>type</th><th>message</th><th class="n">turns</th><th class="n">failures</th><th class="n">turns/s</th><th class="n">p50 ms</th><th class="n">p99 ms</th></tr></thead><tbody>' + messages + '</tbody></table></section>';
  }

  function letterRows(letters, actions) {
    return letters.map(function (l) {
      return '<tr data-letter="' + esc(l.id) + '"><td>' + esc(new Date(l.at).toISOString()) + '</td><td>' + esc(l.kind) + '</td><td><a href="#/actor/' + encodeURIComponent(l.address.type) + '/' + encodeURIComponent(l.address.id) + '">' + esc(l.address.type) + '/' + esc(l.address.id) + '</a></td><td>' + esc(l.message) + (l.reminder ? ' (' + esc(l.reminder) + ')' : '') + '</td><td class="n">' + num(l.attempts) + '</td><td class="err">' + esc(l.error) + '</td>' +
        (actions ? '<td><button data-replay="' + esc(l.id) + '">Replay</button> <button class="danger" data-discard="' + esc(l.id) + '">Delete</button></td>' : '') + '</tr>';
    }).join('');
  }

  function actorPage(a) {
    var act = a.activation;
    var tree = a.children.map(function (c) {
      return '<tr><td style="padding-left:' + (c.depth * 18) + 'px">└ <a href="#/actor/' + encodeURIComponent(c.address.type) + '/' + encodeURIComponent(c.address.id) + '">' + esc(c.address.type) + '/' + esc(c.address.id) + '</a></td><td>' + esc(c.state) + '</td><td class="n">' + num(c.mailboxDepth) + '</td></tr>';
    }).join('') || '<tr><td colspan="3" class="muted">no children</td></tr>';
    var reminders = a.reminders === undefined ? '<p class="muted">reminders are not set up in this process</p>' :
      '<table><thead><tr><th>name</th><th>message</th><th>next due</th><th class="n">ticks</th></tr></thead><tbody>' + (a.reminders.map(function (r) {
        return '<tr><td>' + esc(r.name) + '</td><td>' + esc(r.message) + '</td><td>' + esc(new Date(r.nextDue).toISOString()) + '</td><td class="n">' + num(r.ticks) + '</td></tr>';
      }).join('') || '<tr><td colspan="4" class="muted">none</td></tr>') + '</tbody></table>';
    return '<section><h2>' + esc(a.address.type) + '/' + esc(a.address.id) + '</h2><table><tbody>' +
      '<tr><th>owner silo</th><td id="owner">' + esc(a.owner === undefined ? 'no silo hosts this type' : a.owner) + '</td></tr>' +
      '<tr><th>active here</th><td id="here">' + (a.here ? 'yes' : 'no' + (a.owner !== undefined ? ' (open the dashboard of its owner for its details)' : '')) + '</td></tr>' +
      (act ? '<tr><th>state</th><td>' + esc(act.state) + '</td></tr><tr><th>mailbox</th><td>' + num(act.mailboxDepth) + ' waiting, ' + num(act.runningTurns) + ' running</td></tr><tr><th>age</th><td>' + ago(act.ageMillis) + '</td></tr><tr><th>timers</th><td>' + (esc(act.timers.join(', ')) || '<span class="muted">none</span>') + '</td></tr>' : '') +
      '</tbody></table></section>' +
      (a.summary === undefined ? '' : '<section><h2>State summary</h2><pre id="summary">' + esc(a.summary) + '</pre></section>') +
      '<section><h2>Children (supervision tree)</h2><table><tbody>' + tree + '</tbody></table></section>' +
      '<section><h2>Reminders</h2>' + reminders + '</section>' +
      '<section><h2>Recent failures (supervision)</h2><table id="failures"><tbody>' + (a.failures.map(function (f) {
        return '<tr><td>' + esc(new Date(f.at).toISOString()) + '</td><td class="err">' + esc(f.failure) + '</td><td>' + esc(f.decision) + '</td></tr>';
      }).join('') || '<tr><td class="muted">none while active here</td></tr>') + '</tbody></table></section>' +
      '<section><h2>Recent errors (dead letters)</h2>' + (a.deadLetters === undefined ? '<p class="muted">reminders are not set up in this process</p>' : '<table><tbody>' + (letterRows(a.deadLetters, false) || '<tr><td class="muted">none</td></tr>') + '</tbody></table>') + '</section>';
  }

  function remindersPage(d) {
    if (!d.available) return '<section><h2>Dead letters</h2><p class="muted">Reminders are not set up in this process (Reminders.layer or Reminders.layerClient).</p></section>';
    return '<section><h2>Dead letters <span class="muted">(' + d.letters.length + ', oldest first)</span></h2><table id="letters"><thead><tr><th>at</th><th>kind</th><th>actor</th><th>message</th><th class="n">attempts</th><th>error</th><th></th></tr></thead><tbody>' +
      (letterRows(d.letters, true) || '<tr><td colspan="7" class="muted">the queue is empty</td></tr>') + '</tbody></table><p id="action" class="muted"></p></section>';
  }

  var actionNote = '';
  function draw(html) { main.innerHTML = html + (lastError ? '<p class="err">' + esc(lastError) + '</p>' : ''); var note = document.getElementById('action'); if (note) note.textContent = actionNote; }

  function tick() {
    if (inFlight || document.hidden) return;
    inFlight = true;
    var r = route();
    document.querySelectorAll('nav a').forEach(function (a) { a.className = a.getAttribute('data-page') === r.page ? 'on' : ''; });
    var done;
    if (r.page === 'actor' && r.rest.length >= 2) done = get('/dashboard/api/actor?type=' + encodeURIComponent(r.rest[0]) + '&id=' + encodeURIComponent(r.rest.slice(1).join('/'))).then(actorPage);
    else if (r.page === 'reminders') done = get('/dashboard/api/dead-letters').then(remindersPage);
    else done = get('/dashboard/api/overview').then(function (o) { record(o); return r.page === 'actors' ? actorsPage(o) : clusterPage(o); });
    done.then(function (html) { lastError = ''; draw(html); }, function (e) { lastError = 'update failed: ' + e.message; draw(''); })
      .then(function () { inFlight = false; document.body.setAttribute('data-ready', r.page); });
  }

  main.addEventListener('click', function (e) {
    var t = e.target, id = t.getAttribute && (t.getAttribute('data-replay') || t.getAttribute('data-discard'));
    if (!id) return;
    var verb = t.getAttribute('data-replay') ? 'replay' : 'discard';
    t.disabled = true;
    post('/dashboard/api/dead-letters/' + verb + '?id=' + encodeURIComponent(id)).then(function (res) {
      actionNote = (verb === 'replay' ? 'replayed ' : 'deleted ') + id + (res.done ? '' : ': failed' + (res.error ? ' (' + res.error + ')' : ''));
      setTimeout(tick, 0);
    });
  });
  document.getElementById('search').addEventListener('submit', function (e) {
    e.preventDefault();
    location.hash = '#/actor/' + encodeURIComponent(document.getElementById('type').value) + '/' + encodeURIComponent(document.getElementById('id').value);
  });
  window.addEventListener('hashchange', function () { main.innerHTML = ''; document.body.removeAttribute('data-ready'); setTimeout(tick, 0); });
  setInterval(tick, 1000);
  tick();
})();
`

/** The page, served at `/dashboard`. */
export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Quark dashboard</title>
<style>${style}</style>
</head>
<body>
<header>
  <h1>Quark</h1>
  <nav><a href="#/cluster" data-page="cluster">Cluster</a><a href="#/actors" data-page="actors">Actors</a><a href="#/reminders" data-page="reminders">Reminders</a></nav>
  <form id="search"><input id="type" placeholder="actor type" required><input id="id" placeholder="actor id" required><button type="submit">Find</button></form>
</header>
<main id="main"></main>
<script>${script}</script>
</body>
</html>
`
