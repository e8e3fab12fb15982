// A stand-in for the Lambda Invoke API that accepts every invocation (202) and
// drops it, printing its port. The schema-driven run uses it so that the
// thousands of generated `/async` calls do not each wait for a task of up to
// 60 s under `cargo lambda watch`, which runs Event invokes synchronously.
'use strict';
const http = require('http');

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(202, { 'x-amzn-requestid': 'accepted' });
    res.end();
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
