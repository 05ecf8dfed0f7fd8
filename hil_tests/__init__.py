"""The hardware-in-the-loop suite: the same tests against the simulated rig and a real Pi.

Only the rig differs (labgrid's environment files): `BATM_RIG=path/to/rig.json` names an existing
rig; otherwise each test gets a simulated one (`batm-sim up`). The library is in rig/.

  conftest               the `rig` fixture, prerequisites (fail in CI, skip outside), step traces
  test_pairing           scenario B pairing, unpair, server change, reboot keeps pairing
  test_seed_matrix       the pairing guide's 12 cases (version class × scenario × paired before)
  test_vpn               scenario A: the master service only through WireGuard
  test_master            the master service: status, exactly-once events, remote commands
  test_admin             the advanced administration through the real kiosk window
  test_upgrade_powercut  power cuts while upgrading
  test_demo              `batm-sim demo` walks the pairing guide
  test_rig_library       the rig library itself, without a rig
  rig/                   resources (where), drivers (how), protocols (what), strategies, target
"""
