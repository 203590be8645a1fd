/* Logging for wxpushd and its tools, after OpenSMTPD's log.c. */
#ifndef WX_LOG_H
#define WX_LOG_H

#include <stdarg.h>

#define LOG_LEVEL_ERR	0
#define LOG_LEVEL_WARN	1
#define LOG_LEVEL_INFO	2
#define LOG_LEVEL_DEBUG	3

void	log_init(const char *, int, int);
void	log_setlevel(int);
int	log_getlevel(void);
int	log_level_parse(const char *);
void	log_vmsg(int, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
void	log_msg(int, const char *, ...) __attribute__((format(printf, 2, 3)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
