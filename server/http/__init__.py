"""The server's HTTP side: the only place FastAPI appears; the domains know nothing of HTTP.

  gate             the HTTPS API terminals talk to (docs/protocol.md §2): hello, pairing,
                   check-in, session, MQTT credentials, log upload
  admin_api        the operator's API on the Unix socket (docs/protocol.md §3), used by the CLI
  bundle_download  GET /api/v1/firmware/{id}/bundle, whole or by HTTP Range
  fields           reading request fields (JSON bodies, query values) with a sentence per refusal
  error_handlers   every error as {"error", "message"} JSON, never a traceback
  body_limit       oversized bodies refused (413) before they are read
  upload           large signed uploads: headers checked first, streamed to disk, bounded
  console/         the operator console's API and pages (its own HTTPS listener)
"""
