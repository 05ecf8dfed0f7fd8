"""The server's firmware side: the catalog of signed bundles, its policy, and the staged upgrades.

  catalog  bundles the operator added (verified copies), the minimum version to pair, the
           upgrade graph and its shortest plan
  gate     what the gate offers a too-old terminal (the next step only, a limited number at
           once) and who may download which bundle
  cli      `batm-server firmware add|list|policy`
"""
