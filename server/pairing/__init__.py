"""Pairing: which terminals exist, how one pairs, and how its signed requests are recognised.

  states          the vocabulary: terminal states, request states, what a session is told
  transactions    one database transaction of the domain, and the rules each one applies first
                  (stale requests expire, an unpaired terminal's state follows its requests)
  registry        terminals the operator creates, lists, unpairs and deletes; valid serials
  requests        pairing requests: hello, reveal, poll; the operator lists and approves them
  enrollment      bulk pre-approval of a fleet by identity keys (one transaction per list)
  replay          signatures already accepted: a signed request cannot be replayed, through
                  any replica (the memory is a table)
  rate_limit      token buckets bounding unauthenticated hellos per source and per serial,
                  in the database: shared by every server process
  authentication  signed requests of paired terminals: check-in, session, who is asking
  views           terminals and requests as the admin API's JSON shapes
"""
