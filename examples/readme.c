#include <udpmux.h>

static void echo(struct udpmux *mux, const struct udpmux_dgram *d, void *arg)
{
    udpmux_reply(mux, d, d->data, d->len); /* answer from the address it came to */
}

int main(void)
{
    struct udpmux *mux;
    if (udpmux_new(&mux, NULL) < 0 || udpmux_bind(mux, "0.0.0.0:7000", 0) < 0)
        return 1;
    udpmux_add_handler(mux, "echo", "prefix 00", echo, NULL, NULL, 0);
    return udpmux_run(mux) < 0;
}
