// The original @aphorica/server-event-mgr 0.1.5 on Express, for
// bench/run.sh: mounted as its own demo server mounts it
// (Aphorica/server-event-demo, app/index.js: CORS middleware, then
// createRouter(prefix)), plus the routes mod_sse_mgr's SPEC section 2 adds,
// each calling the package's own functions:
//
//   PUT|POST {P}listen/:id/:key                  addListenKey
//   POST|PUT {P}notify-completions/:id/:taskid   notifyCompletions
//   POST|PUT {P}notify-listeners/:key            notifyListeners
//
// The package cannot count deliveries (notifyListeners returns nothing,
// notifyCompletions a promise that settles after its whole walk), so both
// answer {"delivered": null} at once, the way the demo's submit-task does
// not wait for notifyCompletions either.
//
// usage: node server.js PORT [PREFIX]
'use strict';

const http = require('http');
const express = require('express');
const ServerEventMgr = require('@aphorica/server-event-mgr');

const port = parseInt(process.argv[2] || '3000', 10);
const prefix = process.argv[3] || '/sse/';
const app = express();

app.use(function (req, res, next) {
  res.header('Access-Control-Allow-Origin', '*');
  res.header('Access-Control-Allow-Methods', 'GET,PUT,POST,DELETE,OPTIONS');
  res.header('Access-Control-Allow-Headers',
    'Content-Type, Accept, Authorization, Content-Length, X-Requested-With');
  if (req.method === 'OPTIONS') {
    res.sendStatus(204);
  } else {
    next();
  }
});
app.use(ServerEventMgr.createRouter(prefix));

function listen(req, res) {
  if (!ServerEventMgr.isRegistered(req.params.id)) {
    res.status(404).type('text/plain').send('unknown id');
    return;
  }
  ServerEventMgr.addListenKey(req.params.id, req.params.key);
  res.type('text/plain').send('ok');
}

function notifyCompletions(req, res) {
  if (!ServerEventMgr.isRegistered(req.params.id)) {
    res.status(404).type('text/plain').send('unknown id');
    return;
  }
  ServerEventMgr.notifyCompletions(req.params.id, req.params.taskid);
  res.json({ delivered: null });
}

function notifyListeners(req, res) {
  ServerEventMgr.notifyListeners(req.params.key);
  res.json({ delivered: null });
}

app.put(prefix + 'listen/:id/:key', listen);
app.post(prefix + 'listen/:id/:key', listen);
app.post(prefix + 'notify-completions/:id/:taskid', notifyCompletions);
app.put(prefix + 'notify-completions/:id/:taskid', notifyCompletions);
app.post(prefix + 'notify-listeners/:key', notifyListeners);
app.put(prefix + 'notify-listeners/:key', notifyListeners);

// Server limits as the other servers of the bench get them: keep-alive
// publisher connections are not cut after 5 s, held streams are never
// timed out by the server, a deep accept queue.
const server = http.createServer(app);
server.keepAliveTimeout = 300000;
server.requestTimeout = 0;
server.headersTimeout = 60000;
server.listen(port, '127.0.0.1', 4096, function () {
  console.log('listening on 127.0.0.1:' + port);
});
process.on('SIGTERM', function () {
  process.exit(0);
});
