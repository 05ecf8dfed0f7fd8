"""The operator console's web side on its own HTTPS listener: the API for automation and the
pages for people, on the same permissions (console/ holds the rules; this package only HTTP).

  app           the console's FastAPI app: the API, the pages, static files, error answers
  bearer        who calls the API: `Authorization: Bearer` tokens, 401 without, 429 for guessers
  api           /api/v1/: terminals (the monitor's filters, CSV, xlsx), pairing requests,
                approve/unpair/vpn/delete, remote commands, archives, firmware, the audit log
  web           what pages share: templates, the session cookie, the CSRF check, headers
  login         /login and /logout: password + TOTP, lockouts, server-side sessions
  pages         the status monitor (filters in the URL, live rows, CSV and Excel), pairing
                requests, a terminal's page, creation (one or CSV), audit
  exports       the monitor's CSV (streamed) and .xlsx (written off the loop) as HTTP answers
  page_actions  the row action menu: approve, unpair, generate VPN, delete; VPN download
  remote_pages  retrieve logs, reset local database, reboot (a row or the selected rows), the
                live commands panel, log archive downloads
  firmware_pages  catalog, policy, upgrade graph, upgrades now; add a bundle, change the policy

templates/ holds the Jinja2 pages; static/ the style sheet and htmx, vendored: htmx.min.js is
htmx.org 2.0.11 from the npm registry (`npm pack htmx.org@2.0.11`, dist/htmx.min.js, sha256
d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717, 0BSD licence); no CDN, no build.
"""
