/* Arm semihosting: text to the debugger's (here QEMU's) console, and exit. */
#ifndef SEMIHOSTING_H
#define SEMIHOSTING_H

void semihosting_write(const char *text);
void semihosting_exit(int code) __attribute__((noreturn));

#endif /* SEMIHOSTING_H */
