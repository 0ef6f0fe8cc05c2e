"""The webhooks area (scope `admin`): each destination's delivery state, and re-enabling one."""
