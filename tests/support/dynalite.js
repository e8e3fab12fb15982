// Starts dynalite (an in-memory DynamoDB) on 127.0.0.1 and prints its port.
//
//   node tests/support/dynalite.js [PORT] [--exit-with-stdin]
//
// PORT 0 (the default) lets the OS pick a free port. With --exit-with-stdin
// the server stops when its standard input closes, so a test process that
// dies, however it dies, never leaves a server behind.
'use strict';
const dynalite = require('dynalite');

const args = process.argv.slice(2);
const port = Number(args.find((arg) => /^\d+$/.test(arg)) || 0);
// Tables become ACTIVE at once: the tests create a fresh table per test.
const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });

server.on('error', (err) => {
  console.error(`dynalite: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  console.log(server.address().port);
});

if (args.includes('--exit-with-stdin')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
