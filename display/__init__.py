"""`batm-display`: the kiosk screen (pygame-ce). It draws the agent's screen model and nothing else;
it never touches the network and runs without root. See display/README.md.

  app            the window: start-up, the event loop, exit
  host           the UI thread's state: the terminal screen or the advanced administration
  agent_link     the subscription to the agent's control socket, in a background thread
  model          the screen model, parsed defensively from the agent's JSON
  screens        what each screen id means on the glass: tone, status word, default wording
  render         draw one screen model onto a surface
  layout         text wrapping and shrinking to fit
  theme          colours, and the WCAG contrast check they are held to
  qr             QR codes for the pairing page
  input          touch, mouse and keyboard as one kind of pointer event
  video          which SDL video driver to ask for (KMSDRM on a Pi), refusing one that shows nothing
  wakeup         sleeping until something happens (no idle polling)
  screenshots    PNGs written atomically on every screen change
  preview        every screen rendered from sample models, without an agent or a window
  contact_sheet  one image of every screen and admin page
  fake_agent     a stand-in control socket for developing the display alone
  admin/         the advanced administration (PIN pad, menu, pages, on-screen keyboard)
  fonts/         bundled Noto Sans (+ CJK subset)
"""
