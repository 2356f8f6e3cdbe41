/* peernet-hello: the README's minimal client and server, both ends in one
 * program and on one thread. The client says hello; the server echoes it;
 * the client prints the echo. Every event of both ends arrives in one
 * inbox, read here the way a game loop calls enet_host_service(). Exits 0
 * once the echo came back (tests/CMakeLists.txt runs it). */
#include <peernet/peernet.h>
#include <stdio.h>

int main(void) {
  pn_runtime *rt;
  pn_actor *inbox; /* this thread's mailbox */
  pn_host *server, *client;
  pn_peer *peer;
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1"; /* port 0: any free one */
  pn_host_config hc = PN_HOST_CONFIG_INIT;
  hc.sockets = &sc;
  hc.socket_count = 1;
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  if (pn_runtime_create(NULL, &rt) || pn_inbox_open(rt, NULL, &inbox) ||
      pn_host_open(rt, &hc, &client)) /* connects out only */
    return 1;
  hc.accept_owner = pc.owner = inbox; /* peers' events go there */
  if (pn_host_open(rt, &hc, &server) ||
      pn_host_local_addr(server, 0, &pc.remote) ||
      pn_host_connect(client, &pc, &peer))
    return 1;
  pn_channel_send(pn_peer_channel(peer, 0), "hello", 5, NULL);
  int echoed = 0;
  pn_msg *m;
  pn_peer_event ev;
  while (!echoed && pn_inbox_receive(inbox, 5000000, &m) == PN_OK) {
    if (pn_msg_type(m) == PN_MSG_PEER_PACKET &&
        pn_msg_peer_event(m, &ev) == PN_OK) {
      if (ev.peer != peer) /* the server's side: echo, no copy */
        pn_channel_send_packet(ev.ch, ev.packet, NULL);
      else /* the client's */
        echoed = printf("%.*s\n", (int)ev.len, (const char *)ev.data) > 0;
    }
    pn_inbox_release(inbox, m);
  }
  pn_peer_release(peer);
  pn_host_close(client); /* the server sees PN_REASON_HOST_CLOSED */
  pn_host_close(server);
  pn_inbox_close(inbox);
  return pn_runtime_destroy(rt) == PN_OK && echoed ? 0 : 1;
}
