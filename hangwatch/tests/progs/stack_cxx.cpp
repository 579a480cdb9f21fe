// A C++ program whose main thread blocks in a named method: hwtest::Pool::drain() reads a
// pipe nobody writes. `ready`.
#include <cstdio>
#include <unistd.h>

namespace hwtest {
class Pool {
  public:
    explicit Pool(int fd) : fd_(fd) {}
    __attribute__((noinline)) long drain(int rounds);

  private:
    int fd_;
};

long Pool::drain(int rounds) {
    char buf[16];
    long n = 0;
    for (int i = 0; i < rounds; i++) n += read(fd_, buf, sizeof buf);
    return n;
}
} // namespace hwtest

int main() {
    int p[2];
    if (pipe(p) != 0) return 1;
    hwtest::Pool pool(p[0]);
    std::printf("ready\n");
    std::fflush(stdout);
    return (int)pool.drain(1000);
}
