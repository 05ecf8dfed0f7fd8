"""The advanced administration on the kiosk screen (architecture §3, §5 admin_* screens).

    gesture.py     the hidden way in (long press in the top-left corner; Ctrl+Alt+A on a keyboard)
    controller.py  pages, PIN entry, the address being typed; requests to the agent
    view.py        what a page shows, as a value (AdminView) and the admin screen ids
    pages.py       info pages (network, VPN, terminal, pairing) from the agent's answers
    widgets.py     where every button goes (one function for drawing and hit tests)
    draw.py        painting a view
    requests.py    agent requests on a worker thread (the UI thread never waits)
    samples.py     one view per page (golden screenshots, contact sheet, benchmark)

The PIN, its lockout and the sessions live in the agent (agent/admin/service.py): the display is
an unprivileged UI and gains nothing by being restarted.
"""
