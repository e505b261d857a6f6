// The peer contender: Express + jsonwebtoken, verifying an HS256 bearer token
// with the secret passed as a string (the way Tiledesk's server verifies
// custom tokens), answering a small JSON body.
"use strict";
const express = require("express");
const jwt = require("jsonwebtoken");

const secret = process.env.BENCH_SECRET;
const port = Number(process.env.PORT || 9200);
const app = express();

app.get("/verify", (req, res) => {
  const header = req.get("authorization") || "";
  const token = header.replace(/^(bearer|jwt) /i, "");
  try {
    const claims = jwt.verify(token, secret, { algorithms: ["HS256"] });
    res.json({ ok: true, sub: claims.sub });
  } catch (err) {
    res.status(401).json({ ok: false, reason: err.name });
  }
});

app.listen(port, "127.0.0.1");
