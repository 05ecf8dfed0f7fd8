"""Firmware updater: signed bundles streamed into the inactive A/B slot, tried once, committed.

Modules, one concept each (docs in each module):
  manifest   the signed description of a bundle and the install policy it carries
  bundle     the single-file container: header, manifest, signature table, payload
  trust      trusted public keys (rotation), signing keys, signature checks
  tarstream  a resumable, refusing-by-default streaming tar reader
  source     where bundle bytes come from: a file or HTTP(S) with Range resume
  payload    hash-then-apply pipeline that streams the payload into a slot writer
  slots      the slot backend protocol and the metadata layout the agent reads
  slots_dir  directory backend (atomic `active` symlink switch)
  slots_rpi  Raspberry Pi backend (boot partitions, autoboot.txt, tryboot)
  backends   which backend a slots directory names (SLOTS_DIR/updater.json)
  payload_check  read a payload as a terminal would, without installing (for publishers)
  journal    the persisted install state (written before every step is acted on)
  install    the state machine that drives an install, a boot, a commit, a rollback
  hooks      state scripts run at well-defined points
  faults     deterministic crash points for the power-cut tests
  cli        `batm-firmware`
"""
