"""The units half of a dispatcher's screen: who is on duty (unit boards), who pressed panic (panic
alerts), and the members' own unit commands. Delivered by the feed engine's channel writers."""
