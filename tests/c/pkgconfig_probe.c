/* Built with `pkg-config --cflags --libs ttpo` against an installed prefix. */
#include <ttpo.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc != 2 || strcmp(ttpo_version(), argv[1]) != 0) {
        fprintf(stderr, "installed libttpo reports %s\n", ttpo_version());
        return 1;
    }
    printf("pkg-config build links libttpo %s\n", ttpo_version());
    return 0;
}
