"""The units half of a dispatcher's screen: who is on duty (unit boards), who pressed panic (panic
alerts), and the members' own unit commands.

Contract: one units engine per community, built by the composition root (`bot.app`); its boards
and alerts are lanes of the community's channel writers (`bot.delivery`), the same writers as the
feed's; its unit events come with the calls' events, from the feed engine. Nothing here imports
`bot.feed`."""
