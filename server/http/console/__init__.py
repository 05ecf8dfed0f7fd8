"""The operator console's web side on its own HTTPS listener: the API for automation and the
pages for people, on the same permissions (console/ holds the rules; this package only HTTP).

  app     the console's FastAPI app: the API, the pages, their static files, error answers
  bearer  who calls the API: `Authorization: Bearer` tokens, 401 without, 429 for guessers
  api     /api/v1/: terminals, pairing requests, approve/unpair/vpn/delete, the audit log
"""
