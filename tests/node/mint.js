// Mint tokens exactly as the vendors' documents show, with jsonwebtoken.
// Usage: node mint.js <typingmind|kustomer|tiledesk> <secret> '<json payload>'
"use strict";
const jwt = require("jsonwebtoken");

const [mode, secret, payloadJson] = process.argv.slice(2);
const payload = JSON.parse(payloadJson || "{}");

let token;
if (mode === "typingmind") {
  // TypingMind's Node example.
  token = jwt.sign(payload, secret, { expiresIn: "7 days" });
} else if (mode === "kustomer") {
  // Kustomer's sample: a fresh iat and an explicit HS256 header.
  token = jwt.sign(
    { ...payload, iat: Math.floor(Date.now() / 1000) },
    secret,
    { header: { alg: "HS256", typ: "JWT" } },
  );
} else if (mode === "tiledesk") {
  token = jwt.sign(payload, secret);
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
process.stdout.write(token);
