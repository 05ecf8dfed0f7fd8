"""The master service: terminals' MQTT traffic stored, remote commands, logs; the broker itself.

  broker      Mosquitto as a supervised child: its config, its limits, restarts
  dynsec      the dynamic-security plugin's file: admin user, terminal clients and roles
  link        the server's own MQTT client: dynsec administration, ingest worker, acknowledgements
  ingest_client  the connection the terminals' messages come in on: PUBACK only after the commit
  mqtt_codec  the MQTT 3.1.1 packets that connection reads and writes
  payloads    what a terminal's MQTT payloads must look like, checked field by field
  ingest      status, events and command results into the database, one transaction a batch
  status_rows a batch's status rows: read once, written in bulk (the latest status per terminal)
  event_rows  a batch's events: written together, the ids already stored looked up once
  ingest_stats  what the ingestion stored, its CPU per message, the status lag (admin API)
  options     `run` options for fleets: --replica (shared ingestion), --history-days, --brokers
  assignment  which of the fleet's brokers a terminal uses (rendezvous hashing of its serial)
  accounts    the accounts on this replica's broker: grants by pairing, revocations whichever
              replica handled the unpair (wake-ups, and sweeps for the ones missed)
  monitoring  the seed's status-monitoring page as data: status (red/yellow), history, events
  commands    remote commands the operator issues and their results
  archives    log archives terminals upload for retrieve_logs
  views       the rows as the admin API's JSON shapes
  service     the parts above as one, as the server runs them and the HTTP APIs take them
  cli         `batm-server terminal status|events|logs|reset-db|reboot|command|archives`
"""
