"""The advanced administration the display offers behind a PIN (the control socket's `admin_*`).

  service  AdminService: sessions, and the admin_* commands (unlock, set PIN, info, set server…)
  pin      the PIN, stored hashed (scrypt) with its lockout after repeated failures
  network  the terminal's network as the info page shows it, read from the OS
"""
