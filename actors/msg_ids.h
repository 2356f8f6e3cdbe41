/* Private message types of the network actors. Each actor's own messages
 * live in a band of their own inside the range the runtime reserves
 * (PN_MSG_TYPE_RESERVED and up, which pn_send() and pn_timer_start()
 * refuse), away from every public PN_MSG_* value (0xFFFFFFxx): no
 * application message can pass for one, and no two collide. Only the
 * library sends them (pn__send_parts, pn__timer_start); each actor's file
 * lists the ones it handles. */
#ifndef PN_ACTORS_MSG_IDS_H
#define PN_ACTORS_MSG_IDS_H

#define PN__BAND(n) (0xFFFF1000u + ((n) << 8))

/* The socket actor (socket.c). */
#define PN__SOCK_ATTACH (PN__BAND(1u) + 1u)
#define PN__SOCK_READY (PN__BAND(1u) + 2u)
#define PN__SOCK_SEND (PN__BAND(1u) + 3u)
#define PN__SOCK_CLOSE (PN__BAND(1u) + 4u)
#define PN__SOCK_SET_COND (PN__BAND(1u) + 5u)
#define PN__SOCK_COND_TICK (PN__BAND(1u) + 6u)
#define PN__SOCK_SET_FILTER (PN__BAND(1u) + 7u)
/* The host actor (host.c). */
#define PN__H_REGISTER (PN__BAND(2u) + 1u)
#define PN__H_CLOSE (PN__BAND(2u) + 2u)
#define PN__H_START (PN__BAND(2u) + 3u)
#define PN__H_EPH_WIPE (PN__BAND(2u) + 4u)
#define PN__H_ADMIT_TICK (PN__BAND(2u) + 5u)
/* The peer actor (peer.c). */
#define PN__P_RECV (PN__BAND(3u) + 1u)
#define PN__P_START (PN__BAND(3u) + 2u)
#define PN__P_TICK (PN__BAND(3u) + 3u)
#define PN__P_DISCONNECT (PN__BAND(3u) + 4u)
#define PN__P_CHANNEL_DONE (PN__BAND(3u) + 5u)
#define PN__P_POKE (PN__BAND(3u) + 6u)
#define PN__P_TIMEOUTS (PN__BAND(3u) + 7u)
/* The channel actor (channel.c). */
#define PN__C_SEND (PN__BAND(4u) + 1u)
#define PN__C_CLOSE (PN__BAND(4u) + 2u)

#endif
