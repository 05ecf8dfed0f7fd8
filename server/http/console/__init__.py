"""The operator console's web side on its own HTTPS listener: the API for automation and the
pages for people, on the same permissions (console/ holds the rules; this package only HTTP).

  app           the console's FastAPI app: the API, the pages, static files, error answers
  bearer        who calls the API: `Authorization: Bearer` tokens, 401 without, 429 for guessers
  api           /api/v1/: terminals, pairing requests, approve/unpair/vpn/delete, the audit log
  web           what pages share: templates, the session cookie, the CSRF check, headers
  login         /login and /logout: password + TOTP, lockouts, server-side sessions
  pages         terminal list, pairing requests, a terminal's page, creation (one or CSV), audit
  page_actions  the row action menu: approve, unpair, generate VPN, delete; VPN download

templates/ holds the Jinja2 pages; static/ the style sheet and htmx, vendored: htmx.min.js is
htmx.org 2.0.11 from the npm registry (`npm pack htmx.org@2.0.11`, dist/htmx.min.js, sha256
d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717, 0BSD licence); no CDN, no build.
"""
