"""The operator console's domain: who may log in, what they may do where, and what they did.
The console's web side (pages and the HTTPS API) is in http/console/; this package knows no HTTP.

  permissions  roles, the actions they allow, a user's locations (Principal); 404 outside them
  passwords    argon2id hashes and the minimum length
  totp         the second factor: enrolment URI, one-time acceptance of a code
  users        console users made on the command line: role, locations, password, TOTP, disable
  tokens       API bearer tokens (stored as digests), acting as their user
  sessions     browser sessions kept server-side: revocable, idle expiry, their CSRF token
  lockouts     login rate limiting: failures per account and per address, growing lockouts
  audit        the append-only audit log: recording, and reading it within one's locations
  monitor      the status monitor's query: columns, red/yellow, the seed's filters, in one SQL
  fleet        the monitor's pages and exports, pairing requests, a terminal's page, all within
               the user's locations
  export       the monitor's view as CSV and as .xlsx (dates, fills), streamed
  actions      create, approve, unpair, generate VPN, delete: checked, done, audited
  remote       retrieve logs, reset local database, reboot (one or selected rows); results and
               log archives within one's locations
  firmware     the firmware page: catalog, policy, upgrade graph, upgrades now; add, set policy
  service      the parts above as one, as the server runs them
  cli          `batm-server user add|list|passwd|disable|locations`, `batm-server token create`
"""
