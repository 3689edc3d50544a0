/* The floor of an uncontended lock that survives its holder's death, beside the plain
 * process-shared mutex of limits.c: lock+unlock of glibc's process-shared, robust, and robust
 * priority-inheritance mutexes (the kind multiproc's Lock is), best of 5 x 2,000,000.
 *
 *   gcc -O2 -o /tmp/pi_floor bench/pi_floor.c -lpthread && /tmp/pi_floor
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <sys/mman.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static double bench(pthread_mutex_t *m){
  int n=2000000; double best=1e9;
  for(int r=0;r<5;r++){double t=now(); for(int i=0;i<n;i++){pthread_mutex_lock(m);pthread_mutex_unlock(m);} double d=(now()-t)/n*1e9; if(d<best)best=d;}
  return best;
}
int main(void){
  pthread_mutex_t *m=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a); pthread_mutexattr_setpshared(&a,PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&m[0],&a);
  printf("pshared (limits.c kind): %.2f ns\n", bench(&m[0]));
  pthread_mutexattr_setrobust(&a,PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&m[1],&a);
  printf("pshared robust: %.2f ns\n", bench(&m[1]));
  pthread_mutexattr_setprotocol(&a,PTHREAD_PRIO_INHERIT);
  pthread_mutex_init(&m[2],&a);
  printf("pshared robust PI (glibc): %.2f ns\n", bench(&m[2]));
  return 0;
}
