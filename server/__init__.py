"""The reference server: the gate terminals talk to, the operator's admin API and CLI, the master
service's broker, the VPN endpoint, and their database. One subpackage per domain; the top level
is what concerns the server as a whole.

  app              `batm-server run`: the gate and the admin API in one asyncio loop, the broker
                   and the VPN started and stopped with them
  settings         what `run` is told (listen addresses, broker, VPN, upgrade limit), checked
  paths            where things live in the data dir
  errors           ServiceError: the one refusal type (HTTP status, code, sentence)
  notify           in-process wake-ups of long-polls, and the topics they wait on
  ca               the server's own CA and TLS certificate (made once, pinned by terminals)
  local_addresses  which addresses a listen host stands for (the certificate's names)

  pairing/   registry, pairing requests, request authentication; the terminal states
  master/    MQTT ingest, remote commands, log archives, the broker and the server's link to it
  firmware/  the catalog of signed bundles, its policy, the gate's upgrade decisions, its CLI
  vpn/       scenario A: the WireGuard endpoint, tunnel addresses, the gate's VPN answers
  console/   the operator console's users, permissions, tokens, sessions, audit log
  http/      the gate, admin API and console apps, error handlers, body limit, request fields
  db/        the engine apart from the tables; the tables of every domain
  cli/       `batm-server`: the entry point, the admin client, what it prints

Dependencies run one way: db ← pairing ← firmware, master, vpn ← console ← http ← app. The CLI
loads the domains' database and HTTP parts only inside the commands that need them (fast `--help`).
"""
