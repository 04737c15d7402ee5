/*
 * res_devcluster -- device state and MWI clustering through devclusterd
 *
 * Copyright (C) 2026, the devcluster authors
 *
 * This program is free software, distributed under the terms of
 * the GNU General Public License Version 2. See the LICENSE file
 * in this directory.
 */

/*!
 * \file
 * \brief Device state and MWI clustering through devclusterd
 *
 * devclusterd runs a Totem ring between the servers of a cluster and keeps,
 * for every device, each server's own state, and the cluster's voicemail
 * counts.  This module is its Asterisk adapter: it connects to the daemon's
 * control socket (one JSON object per line), publishes this server's own
 * cachable device states and MWI, and injects the other servers' states into
 * Asterisk's device state cache under their entity ids, so that Asterisk's own
 * aggregation folds them exactly as it does with res_corosync.
 *
 * Threads:
 * - The module thread owns the connection: non-blocking connect, poll() on the
 *   socket and an alert pipe, reconnect with back-off, pending output buffer.
 * - Stasis callbacks only append to a bounded queue and wake the thread.
 * - CLI commands read the state the module thread keeps, or open their own
 *   short-lived connection with a hard timeout.
 */

/*** MODULEINFO
	<defaultenabled>no</defaultenabled>
	<support_level>extended</support_level>
 ***/

#include "asterisk.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <regex.h>
#include <time.h>

#include "asterisk/module.h"
#include "asterisk/logger.h"
#include "asterisk/config.h"
#include "asterisk/cli.h"
#include "asterisk/json.h"
#include "asterisk/lock.h"
#include "asterisk/linkedlists.h"
#include "asterisk/alertpipe.h"
#include "asterisk/poll-compat.h"
#include "asterisk/astobj2.h"
#include "asterisk/strings.h"
#include "asterisk/utils.h"
#include "asterisk/localtime.h"
#include "asterisk/ast_version.h"
#include "asterisk/paths.h"
#include "asterisk/devicestate.h"
#include "asterisk/mwi.h"
#include "asterisk/stasis.h"

/*! \brief The configuration file */
#define CONFIG_FILE "res_devcluster.conf"

/*! \brief devclusterd's default control socket (its [options] control_socket when run as root) */
#define DEFAULT_SOCKET "/run/devcluster/devclusterd.sock"

/*! \brief The control protocol version this module speaks */
#define PROTOCOL_VERSION 1

/*! \brief Longest request line the daemon accepts (without the newline) */
#define MAX_REQUEST_LINE 65536

/*!
 * \brief Longest line accepted from the daemon (without the newline)
 *
 * Requests are limited to 64 KiB, but a snapshot of a large cluster is one
 * response line and can be larger; devclusterd's own client takes 64 MiB.
 */
#define MAX_RESPONSE_LINE (64 * 1024 * 1024)

/*! \brief Entries the publish queue holds before it is dropped for a full re-sync */
#define QUEUE_MAX 100000

/*! \brief Queued changes move to the output buffer only while it holds less than this */
#define OUTPUT_HIGH_WATER (256 * 1024)

/*! \brief Reconnect back-off: first delay, doubled after each failure up to the cap */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/*! \brief Connecting and the handshake must be done within this */
#define HANDSHAKE_TIMEOUT_MS 10000

/*! \brief How often the module thread refreshes the daemon's status for the CLI */
#define STATUS_REFRESH_MS 10000

/*! \brief Hard limits of the CLI's own connection */
#define CLI_TIMEOUT_MS 3000

/*! \brief At most one warning of a kind per this many milliseconds */
#define WARNING_INTERVAL_MS 10000

/*! \brief Length of a formatted entity id plus its terminator */
#define EID_STR_LEN 18

#define SUN_PATH_SIZE (sizeof(((struct sockaddr_un *) NULL)->sun_path))

/*! \brief Configuration (an immutable ao2 object, replaced whole on reload) */
struct devcluster_config {
	/*! devclusterd's control socket */
	char socket_path[SUN_PATH_SIZE];
	/*! Publish this server's own device states */
	int publish_devstate;
	/*! Publish this server's own MWI */
	int publish_mwi;
	/*! Inject the other servers' device states */
	int subscribe_devstate;
	/*! Inject the cluster's MWI */
	int subscribe_mwi;
	/*! Whether device_filter is set */
	int has_device_filter;
	/*! Whether mailbox_filter is set */
	int has_mailbox_filter;
	/*! Whether the configuration file was found */
	int file_found;
	/*! Only devices matching this are shared */
	regex_t device_filter;
	/*! Only mailboxes (MAILBOX\@CONTEXT) matching this are shared */
	regex_t mailbox_filter;
	/*! The filters as configured, for the CLI and for comparing on reload */
	char *device_filter_text;
	char *mailbox_filter_text;
};

static AO2_GLOBAL_OBJ_STATIC(global_config);

/*! \brief What a queued local change asks of the daemon */
enum publish_kind {
	PUBLISH_DEVSTATE_SET,
	PUBLISH_DEVSTATE_CLEAR,
	PUBLISH_MWI_SET,
};

/*! \brief One local change waiting for the module thread */
struct publish_item {
	AST_LIST_ENTRY(publish_item) list;
	enum publish_kind kind;
	/*! Device state, or new messages */
	int value1;
	/*! Old messages */
	int value2;
	/*! Device name, or MAILBOX\@CONTEXT */
	char name[0];
};

/*!
 * \brief The queue between stasis callbacks and the module thread, and the
 * thread's control flags; all protected by queue_lock.
 */
AST_MUTEX_DEFINE_STATIC(queue_lock);
static AST_LIST_HEAD_NOLOCK_STATIC(queue_items, publish_item);
static unsigned int queue_length;
/*! Connected and synchronised: local changes are queued */
static int queue_accepting;
/*! A full re-sync is wanted (the queue overflowed, or the configuration changed) */
static int want_resync;
/*! The socket path changed: reconnect */
static int want_reconnect;
/*! The module is unloading */
static int want_stop;
/*! The alert pipe holds a wake-up the thread has not read yet */
static int wake_pending;

static int alert_pipe[2] = { -1, -1 };
static pthread_t module_thread = AST_PTHREADT_NULL;

static struct stasis_subscription *devstate_sub;
static struct stasis_subscription *mwi_sub;

/*! \brief Connection state shown by the CLI */
enum link_state {
	LINK_DISCONNECTED,
	LINK_CONNECTING,
	LINK_HANDSHAKE,
	LINK_CONNECTED,
	LINK_MISMATCH,
};

/*! \brief What the module thread knows, for the CLI; protected by status_lock */
struct devcluster_status {
	enum link_state state;
	/*! When the current connected or disconnected period began */
	time_t since;
	/*! Connection attempts since the last success */
	unsigned int attempts;
	/*! The last connection problem */
	char last_error[512];
	/*! The daemon's entity_mismatch message */
	char mismatch[1024];
	/*! Whether the fields below describe a daemon we registered with */
	int daemon_known;
	unsigned int nodeid;
	char node_name[64];
	char cluster[64];
	char entity_id[EID_STR_LEN];
	char version[32];
	char ring[32];
	char ring_state[32];
	long view;
	int quorum_known;
	int quorate;
	unsigned int present;
	unsigned int configured;
	char quorum_text[128];
	/* Counters since the module was loaded */
	unsigned long devstates_published;
	unsigned long devstates_cleared;
	unsigned long mwi_published;
	unsigned long remote_injected;
	unsigned long remote_cleared;
	unsigned long mwi_injected;
	unsigned long servers_left;
	unsigned long entries_purged;
	unsigned long aggregates_republished;
	unsigned long resyncs;
	unsigned long connects;
	unsigned long request_errors;
	unsigned long queue_overflows;
	unsigned long bad_lines;
};

AST_MUTEX_DEFINE_STATIC(status_lock);
static struct devcluster_status status;

/*! \brief Handshake and run phases of the connection */
enum conn_phase {
	PHASE_IDLE,
	PHASE_CONNECTING,
	PHASE_HELLO,
	PHASE_REGISTER,
	PHASE_SUBSCRIBE,
	PHASE_READY,
};

/*! \brief The daemon connection; touched by the module thread only */
static struct {
	int fd;
	enum conn_phase phase;
	long long next_id;
	/*! The hello, adapter_register or subscribe request in flight */
	long long handshake_id;
	/*! The snapshot request of a re-sync in flight, or 0 */
	long long snapshot_id;
	/*! The status request in flight, or 0 */
	long long status_id;
	char *out;
	size_t out_len;
	size_t out_off;
	size_t out_cap;
	char *in;
	size_t in_len;
	size_t in_cap;
	/*! Skipping the rest of an over-long line */
	int discarding;
	/*! Connect and handshake deadline */
	int64_t deadline;
	/*! When to try connecting again */
	int64_t retry_at;
	unsigned int backoff_ms;
	int64_t next_refresh;
	int ever_connected;
	char path[SUN_PATH_SIZE];
	/*! The last connection problem logged, so that each is logged once */
	char last_logged[1024];
} conn = {
	.fd = -1,
	.backoff_ms = BACKOFF_MIN_MS,
};

/*! \brief Warnings of one kind, at most one per WARNING_INTERVAL_MS */
struct warning_limit {
	int64_t last;
	unsigned int suppressed;
};

static struct warning_limit bad_line_limit;
static struct warning_limit request_error_limit;
static struct warning_limit bad_event_limit;
static struct warning_limit overflow_limit;

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*!
 * \brief Whether a warning of this kind may be logged now
 * \param limit The kind
 * \param suppressed How many were left out since the last one
 */
static int warning_allowed(struct warning_limit *limit, unsigned int *suppressed)
{
	int64_t now = monotonic_ms();

	if (limit->last && now - limit->last < WARNING_INTERVAL_MS) {
		limit->suppressed++;
		return 0;
	}
	*suppressed = limit->suppressed;
	limit->suppressed = 0;
	limit->last = now;
	return 1;
}

static const char *our_eid_str(char *buf, size_t len)
{
	return ast_eid_to_str(buf, len, &ast_eid_default);
}

/*! \name Configuration
 * @{ */

static void config_destructor(void *obj)
{
	struct devcluster_config *cfg = obj;

	if (cfg->has_device_filter) {
		regfree(&cfg->device_filter);
	}
	if (cfg->has_mailbox_filter) {
		regfree(&cfg->mailbox_filter);
	}
	ast_free(cfg->device_filter_text);
	ast_free(cfg->mailbox_filter_text);
}

static struct devcluster_config *config_alloc(void)
{
	struct devcluster_config *cfg;

	cfg = ao2_alloc_options(sizeof(*cfg), config_destructor, AO2_ALLOC_OPT_LOCK_NOLOCK);
	if (!cfg) {
		return NULL;
	}
	ast_copy_string(cfg->socket_path, DEFAULT_SOCKET, sizeof(cfg->socket_path));
	cfg->publish_devstate = 1;
	cfg->publish_mwi = 1;
	cfg->subscribe_devstate = 1;
	cfg->subscribe_mwi = 1;
	return cfg;
}

static void config_error(const struct ast_variable *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*! \brief Log a bad option, naming the file, the line, the option and its value */
static void config_error(const struct ast_variable *v, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	ast_log(LOG_ERROR, "%s/%s line %d: '%s = %s': %s\n", ast_config_AST_CONFIG_DIR, CONFIG_FILE,
		v->lineno, v->name, v->value, reason);
}

/*! \brief Parse publish_event/subscribe_event: device_state, mwi or none, comma-separated */
static int config_event_list(const struct ast_variable *v, int *devstate, int *mwi)
{
	char *list = ast_strdupa(v->value);
	char *item;

	while ((item = strsep(&list, ","))) {
		item = ast_strip(item);
		if (!strcasecmp(item, "device_state")) {
			*devstate = 1;
		} else if (!strcasecmp(item, "mwi")) {
			*mwi = 1;
		} else if (strcasecmp(item, "none")) {
			config_error(v, "unknown event type '%s' (expected device_state, mwi or none)", item);
			return -1;
		}
	}
	return 0;
}

static int config_filter(const struct ast_variable *v, regex_t *re, int *has, char **text)
{
	char message[256];
	int res;

	if (*has) {
		/* The last one given counts. */
		regfree(re);
		*has = 0;
		ast_free(*text);
		*text = NULL;
	}
	if (ast_strlen_zero(v->value)) {
		return 0;
	}
	res = regcomp(re, v->value, REG_EXTENDED | REG_NOSUB);
	if (res) {
		regerror(res, re, message, sizeof(message));
		config_error(v, "not a valid POSIX extended regular expression: %s", message);
		return -1;
	}
	*has = 1;
	*text = ast_strdup(v->value);
	if (!*text) {
		return -1;
	}
	return 0;
}

static int config_socket(const struct ast_variable *v, struct devcluster_config *cfg)
{
	size_t len = strlen(v->value);

	if (!len) {
		config_error(v, "the socket path is empty");
		return -1;
	}
	if (v->value[0] != '/') {
		config_error(v, "the socket path must be absolute (devclusterd's [options] control_socket)");
		return -1;
	}
	if (len >= sizeof(cfg->socket_path)) {
		config_error(v, "the socket path is %zu bytes long; a Unix socket path holds at most %zu",
			len, sizeof(cfg->socket_path) - 1);
		return -1;
	}
	ast_copy_string(cfg->socket_path, v->value, sizeof(cfg->socket_path));
	return 0;
}

static int config_general(struct ast_config *file, struct devcluster_config *cfg)
{
	struct ast_variable *v;
	int publish_seen = 0;
	int subscribe_seen = 0;

	for (v = ast_variable_browse(file, "general"); v; v = v->next) {
		if (!strcasecmp(v->name, "socket")) {
			if (config_socket(v, cfg)) {
				return -1;
			}
		} else if (!strcasecmp(v->name, "publish_event")) {
			if (!publish_seen) {
				cfg->publish_devstate = cfg->publish_mwi = 0;
				publish_seen = 1;
			}
			if (config_event_list(v, &cfg->publish_devstate, &cfg->publish_mwi)) {
				return -1;
			}
		} else if (!strcasecmp(v->name, "subscribe_event")) {
			if (!subscribe_seen) {
				cfg->subscribe_devstate = cfg->subscribe_mwi = 0;
				subscribe_seen = 1;
			}
			if (config_event_list(v, &cfg->subscribe_devstate, &cfg->subscribe_mwi)) {
				return -1;
			}
		} else if (!strcasecmp(v->name, "device_filter")) {
			if (config_filter(v, &cfg->device_filter, &cfg->has_device_filter, &cfg->device_filter_text)) {
				return -1;
			}
		} else if (!strcasecmp(v->name, "mailbox_filter")) {
			if (config_filter(v, &cfg->mailbox_filter, &cfg->has_mailbox_filter, &cfg->mailbox_filter_text)) {
				return -1;
			}
		} else {
			config_error(v, "unknown option (known: socket, publish_event, subscribe_event, device_filter, mailbox_filter)");
			return -1;
		}
	}
	return 0;
}

/*!
 * \brief Read the configuration file
 * \param reload Non-zero on a reload (an unchanged file is then not read again)
 * \param unchanged Set when the file did not change since the last load
 * \return A new configuration, or NULL when the file has errors (they are logged)
 */
static struct devcluster_config *config_load(int reload, int *unchanged)
{
	struct ast_flags flags = { reload ? CONFIG_FLAG_FILEUNCHANGED : 0 };
	struct devcluster_config *cfg;
	struct ast_config *file;
	const char *category = NULL;

	*unchanged = 0;
	file = ast_config_load(CONFIG_FILE, flags);
	if (file == CONFIG_STATUS_FILEUNCHANGED) {
		*unchanged = 1;
		return NULL;
	}
	if (file == CONFIG_STATUS_FILEINVALID) {
		ast_log(LOG_ERROR, "%s/%s cannot be parsed (see the error above)\n", ast_config_AST_CONFIG_DIR, CONFIG_FILE);
		return NULL;
	}

	cfg = config_alloc();
	if (!cfg) {
		if (file != CONFIG_STATUS_FILEMISSING) {
			ast_config_destroy(file);
		}
		return NULL;
	}

	if (file == CONFIG_STATUS_FILEMISSING || !file) {
		ast_log(LOG_NOTICE, "%s/%s not found: sharing device state and MWI both ways through devclusterd at %s\n",
			ast_config_AST_CONFIG_DIR, CONFIG_FILE, cfg->socket_path);
		return cfg;
	}
	cfg->file_found = 1;

	while ((category = ast_category_browse(file, category))) {
		if (!strcasecmp(category, "general")) {
			if (config_general(file, cfg)) {
				ao2_ref(cfg, -1);
				cfg = NULL;
				break;
			}
		} else {
			ast_log(LOG_ERROR, "%s/%s: unknown section [%s] (only [general] is known)\n",
				ast_config_AST_CONFIG_DIR, CONFIG_FILE, category);
			ao2_ref(cfg, -1);
			cfg = NULL;
			break;
		}
	}
	ast_config_destroy(file);
	return cfg;
}

static int config_same_filters(const struct devcluster_config *a, const struct devcluster_config *b)
{
	return !strcmp(S_OR(a->device_filter_text, ""), S_OR(b->device_filter_text, ""))
		&& !strcmp(S_OR(a->mailbox_filter_text, ""), S_OR(b->mailbox_filter_text, ""));
}

static int device_matches(const struct devcluster_config *cfg, const char *device)
{
	return !cfg->has_device_filter || !regexec(&cfg->device_filter, device, 0, NULL, 0);
}

static int mailbox_matches(const struct devcluster_config *cfg, const char *mailbox_id)
{
	return !cfg->has_mailbox_filter || !regexec(&cfg->mailbox_filter, mailbox_id, 0, NULL, 0);
}

/*! \brief MAILBOX\@CONTEXT of an MWI unique id (Asterisk leaves out an empty context) */
static char *mailbox_id_normalize(const char *uniqueid)
{
	char *id;

	if (strchr(uniqueid, '@')) {
		return ast_strdup(uniqueid);
	}
	if (ast_asprintf(&id, "%s@default", uniqueid) < 0) {
		return NULL;
	}
	return id;
}

/*! @} */

/*! \name The queue between stasis and the module thread
 * @{ */

/*! \brief Wake the module thread; call with queue_lock held */
static void thread_wake_locked(void)
{
	if (!wake_pending && alert_pipe[1] > -1) {
		wake_pending = 1;
		ast_alertpipe_write(alert_pipe);
	}
}

/*! \brief Drop every queued change; call with queue_lock held */
static void queue_flush_locked(void)
{
	struct publish_item *item;

	while ((item = AST_LIST_REMOVE_HEAD(&queue_items, list))) {
		ast_free(item);
	}
	queue_length = 0;
}

static void queue_push(enum publish_kind kind, const char *name, int value1, int value2)
{
	struct publish_item *item;
	size_t len = strlen(name);
	unsigned int suppressed;

	/* calloc: AST_LIST_INSERT_TAIL does not reset the entry's next pointer */
	item = ast_calloc(1, sizeof(*item) + len + 1);
	if (!item) {
		return;
	}
	item->kind = kind;
	item->value1 = value1;
	item->value2 = value2;
	memcpy(item->name, name, len + 1);

	ast_mutex_lock(&queue_lock);
	if (!queue_accepting) {
		/* Not connected: the re-sync on (re)connect covers this change. */
		ast_mutex_unlock(&queue_lock);
		ast_free(item);
		return;
	}
	if (queue_length >= QUEUE_MAX) {
		int warn;

		queue_flush_locked();
		want_resync = 1;
		thread_wake_locked();
		warn = warning_allowed(&overflow_limit, &suppressed);
		ast_mutex_unlock(&queue_lock);
		ast_free(item);
		if (warn) {
			ast_log(LOG_WARNING, "More than %d local changes wait for devclusterd: dropped them, a full re-sync follows\n",
				QUEUE_MAX);
		}
		ast_mutex_lock(&status_lock);
		status.queue_overflows++;
		ast_mutex_unlock(&status_lock);
		return;
	}
	AST_LIST_INSERT_TAIL(&queue_items, item, list);
	queue_length++;
	thread_wake_locked();
	ast_mutex_unlock(&queue_lock);
}

/*! @} */

/*! \name Asterisk's caches
 * @{ */

/*! \brief Remove one entry of the device state cache (the stasis way, as a clear message) */
static void devstate_cache_clear(struct stasis_message *cached)
{
	struct ast_device_state_message *device_state = stasis_message_data(cached);
	struct stasis_message *clear;
	struct stasis_topic *topic;

	topic = ast_device_state_topic(device_state->device);
	clear = stasis_cache_clear_create(cached);
	if (clear && topic) {
		stasis_publish(topic, clear);
	}
	ao2_cleanup(clear);
}

/*!
 * \brief Inject another server's state of a device
 * \return 1 when Asterisk's cache changed
 */
static int remote_devstate_inject(const char *device, enum ast_device_state state, const struct ast_eid *eid)
{
	struct stasis_message *cached;
	struct ast_eid remote = *eid;
	int same = 0;

	cached = stasis_cache_get_by_eid(ast_device_state_cache(), ast_device_state_message_type(), device, eid);
	if (cached) {
		struct ast_device_state_message *device_state = stasis_message_data(cached);

		same = device_state->state == state;
		ao2_ref(cached, -1);
	} else {
		/* An absent entry reads as UNKNOWN already. */
		same = state == AST_DEVICE_UNKNOWN;
	}
	if (same) {
		return 0;
	}
	if (ast_publish_device_state_full(device, state, AST_DEVSTATE_CACHABLE, &remote)) {
		ast_log(LOG_WARNING, "Failed to inject the state of %s from another server\n", device);
		return 0;
	}
	return 1;
}

/*!
 * \brief Remove another server's state of a device
 * \return 1 when there was one
 */
static int remote_devstate_remove(const char *device, const struct ast_eid *eid)
{
	struct stasis_message *cached;

	cached = stasis_cache_get_by_eid(ast_device_state_cache(), ast_device_state_message_type(), device, eid);
	if (!cached) {
		return 0;
	}
	devstate_cache_clear(cached);
	ao2_ref(cached, -1);
	return 1;
}

/*! \brief Remove every device state a server reported; \return how many */
static int remote_devstate_purge(const struct ast_eid *eid)
{
	struct ao2_container *cached;
	struct ao2_iterator it;
	struct stasis_message *msg;
	int count = 0;

	cached = stasis_cache_dump_by_eid(ast_device_state_cache(), ast_device_state_message_type(), eid);
	if (!cached) {
		return 0;
	}
	it = ao2_iterator_init(cached, 0);
	for (; (msg = ao2_iterator_next(&it)); ao2_ref(msg, -1)) {
		devstate_cache_clear(msg);
		count++;
	}
	ao2_iterator_destroy(&it);
	ao2_ref(cached, -1);
	return count;
}

/*!
 * \brief Inject the cluster's count of a mailbox another server published
 * \return 1 when Asterisk's cache changed
 */
static int remote_mwi_inject(const char *mailbox, const char *context, int new_msgs, int old_msgs,
	const struct ast_eid *eid)
{
	struct stasis_message *cached;
	struct ast_eid remote = *eid;
	char *id;
	int same = 0;

	if (ast_asprintf(&id, "%s@%s", mailbox, context) < 0) {
		return 0;
	}
	cached = stasis_cache_get(ast_mwi_state_cache(), ast_mwi_state_type(), id);
	ast_free(id);
	if (cached) {
		struct ast_mwi_state *mwi_state = stasis_message_data(cached);

		same = mwi_state->new_msgs == new_msgs && mwi_state->old_msgs == old_msgs
			&& !ast_eid_cmp(&mwi_state->eid, eid);
		ao2_ref(cached, -1);
	}
	if (same) {
		return 0;
	}
	if (ast_publish_mwi_state_full(mailbox, context, new_msgs, old_msgs, NULL, &remote)) {
		ast_log(LOG_WARNING, "Failed to inject MWI of %s@%s from another server\n", mailbox, context);
		return 0;
	}
	return 1;
}

/*! @} */

/*! \name Stasis callbacks (never wait on the daemon)
 * @{ */

/*!
 * \brief Device state cache updates
 *
 * - An update of this server's own entry is queued for the daemon
 *   (devstate_set, or devstate_clear when the entry was removed).
 * - When an aggregate is deleted (the last entry of a device was removed, e.g.
 *   the only server that reported it left), the cache publishes nothing: hints
 *   and AMI would keep the old state forever.  Publish a non-cached aggregate
 *   with the device's state as Asterisk now reads it, which pbx.c's hint code
 *   and res_manager_devicestate act on.
 */
static void devstate_update_cb(void *data attribute_unused, struct stasis_subscription *sub attribute_unused,
	struct stasis_message *msg)
{
	struct stasis_cache_update *update;
	struct ast_device_state_message *old_state;
	struct ast_device_state_message *new_state;
	struct devcluster_config *cfg;

	if (stasis_message_type(msg) != stasis_cache_update_type()) {
		return;
	}
	update = stasis_message_data(msg);
	if (update->type != ast_device_state_message_type()) {
		return;
	}
	old_state = update->old_snapshot ? stasis_message_data(update->old_snapshot) : NULL;
	new_state = update->new_snapshot ? stasis_message_data(update->new_snapshot) : NULL;

	if (!new_state && old_state && !old_state->eid) {
		enum ast_device_state state = ast_device_state(old_state->device);

		ast_debug(1, "Aggregate state of %s was removed: republishing %s\n",
			old_state->device, ast_devstate_str(state));
		ast_publish_device_state_full(old_state->device, state, AST_DEVSTATE_NOT_CACHABLE, NULL);
		ast_mutex_lock(&status_lock);
		status.aggregates_republished++;
		ast_mutex_unlock(&status_lock);
		return;
	}

	cfg = ao2_global_obj_ref(global_config);
	if (!cfg || !cfg->publish_devstate) {
		ao2_cleanup(cfg);
		return;
	}
	if (new_state) {
		if (new_state->eid && !ast_eid_cmp(new_state->eid, &ast_eid_default)
			&& new_state->cachable == AST_DEVSTATE_CACHABLE
			&& device_matches(cfg, new_state->device)) {
			queue_push(PUBLISH_DEVSTATE_SET, new_state->device, new_state->state, 0);
		}
	} else if (old_state && old_state->eid && !ast_eid_cmp(old_state->eid, &ast_eid_default)
		&& device_matches(cfg, old_state->device)) {
		queue_push(PUBLISH_DEVSTATE_CLEAR, old_state->device, 0, 0);
	}
	ao2_ref(cfg, -1);
}

/*!
 * \brief MWI cache updates
 *
 * Every MWI message carries this server's EID as far as stasis is concerned;
 * the originating server is in the state's own eid field.
 */
static void mwi_update_cb(void *data attribute_unused, struct stasis_subscription *sub attribute_unused,
	struct stasis_message *msg)
{
	struct stasis_cache_update *update;
	struct ast_mwi_state *mwi_state;
	struct devcluster_config *cfg;
	int new_msgs = 0;
	int old_msgs = 0;
	char *id;

	if (stasis_message_type(msg) != stasis_cache_update_type()) {
		return;
	}
	update = stasis_message_data(msg);
	if (update->type != ast_mwi_state_type()) {
		return;
	}
	if (update->new_snapshot) {
		mwi_state = stasis_message_data(update->new_snapshot);
		new_msgs = mwi_state->new_msgs;
		old_msgs = mwi_state->old_msgs;
	} else if (update->old_snapshot) {
		/* This server deleted the mailbox's state: the cluster reads zero. */
		mwi_state = stasis_message_data(update->old_snapshot);
	} else {
		return;
	}
	if (ast_eid_cmp(&mwi_state->eid, &ast_eid_default) || ast_strlen_zero(mwi_state->uniqueid)) {
		return;
	}

	cfg = ao2_global_obj_ref(global_config);
	if (!cfg || !cfg->publish_mwi) {
		ao2_cleanup(cfg);
		return;
	}
	id = mailbox_id_normalize(mwi_state->uniqueid);
	if (id && mailbox_matches(cfg, id)) {
		queue_push(PUBLISH_MWI_SET, id, new_msgs, old_msgs);
	}
	ast_free(id);
	ao2_ref(cfg, -1);
}

/*! @} */

/*! \name JSON helpers
 * @{ */

static const char *json_string_member(struct ast_json *object, const char *key)
{
	struct ast_json *value = ast_json_object_get(object, key);

	return value && ast_json_typeof(value) == AST_JSON_STRING ? ast_json_string_get(value) : NULL;
}

static int json_integer_member(struct ast_json *object, const char *key, intmax_t *out)
{
	struct ast_json *value = ast_json_object_get(object, key);

	if (!value || ast_json_typeof(value) != AST_JSON_INTEGER) {
		return -1;
	}
	*out = ast_json_integer_get(value);
	return 0;
}

static struct ast_json *json_typed_member(struct ast_json *object, const char *key, enum ast_json_type type)
{
	struct ast_json *value = ast_json_object_get(object, key);

	return value && ast_json_typeof(value) == type ? value : NULL;
}

/*! \brief A message count for Asterisk's int fields */
static int json_count_member(struct ast_json *object, const char *key)
{
	intmax_t value;

	if (json_integer_member(object, key, &value) || value < 0) {
		return 0;
	}
	return value > INT_MAX ? INT_MAX : (int) value;
}

/*! @} */

/*! \name The daemon connection (module thread only)
 * @{ */

static size_t out_pending(void)
{
	return conn.out_len - conn.out_off;
}

/*! \brief Append one line (and its newline) to the output buffer */
static int out_append_line(const char *line, size_t len)
{
	if (conn.out_off && conn.out_len + len + 1 > conn.out_cap) {
		memmove(conn.out, conn.out + conn.out_off, conn.out_len - conn.out_off);
		conn.out_len -= conn.out_off;
		conn.out_off = 0;
	}
	if (conn.out_len + len + 1 > conn.out_cap) {
		size_t cap = conn.out_cap ? conn.out_cap : 16384;
		char *grown;

		while (cap < conn.out_len + len + 1) {
			cap *= 2;
		}
		grown = ast_realloc(conn.out, cap);
		if (!grown) {
			return -1;
		}
		conn.out = grown;
		conn.out_cap = cap;
	}
	memcpy(conn.out + conn.out_len, line, len);
	conn.out[conn.out_len + len] = '\n';
	conn.out_len += len + 1;
	return 0;
}

static void link_status_set(enum link_state state, int new_period)
{
	ast_mutex_lock(&status_lock);
	if (new_period || (status.state != state && !(status.state == LINK_MISMATCH && state != LINK_CONNECTED))) {
		if (new_period) {
			status.since = time(NULL);
		}
		status.state = state;
	}
	ast_mutex_unlock(&status_lock);
}

/*! \brief Close the connection and forget what was pending on it */
static void conn_close(void)
{
	if (conn.fd > -1) {
		close(conn.fd);
		conn.fd = -1;
	}
	conn.phase = PHASE_IDLE;
	conn.handshake_id = 0;
	conn.snapshot_id = 0;
	conn.status_id = 0;
	conn.out_len = conn.out_off = 0;
	conn.in_len = 0;
	conn.discarding = 0;

	ast_mutex_lock(&queue_lock);
	queue_accepting = 0;
	queue_flush_locked();
	ast_mutex_unlock(&queue_lock);
}

static void conn_schedule_retry(void)
{
	conn.retry_at = monotonic_ms() + conn.backoff_ms;
	conn.backoff_ms = MIN(conn.backoff_ms * 2, BACKOFF_MAX_MS);
}

static void conn_failv(int refused, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/*!
 * \brief The connection failed or could not be made: close it and retry later
 * \param refused The daemon answered, but refused us (an ERROR, not a NOTICE)
 */
static void conn_failv(int refused, const char *fmt, va_list ap)
{
	char message[512];
	int was_ready = conn.phase == PHASE_READY;

	vsnprintf(message, sizeof(message), fmt, ap);

	conn_close();
	conn_schedule_retry();

	ast_mutex_lock(&status_lock);
	if (was_ready || status.state == LINK_CONNECTED) {
		status.since = time(NULL);
	}
	if (was_ready || status.state != LINK_MISMATCH) {
		status.state = LINK_DISCONNECTED;
	}
	ast_copy_string(status.last_error, message, sizeof(status.last_error));
	ast_mutex_unlock(&status_lock);

	if (was_ready) {
		ast_log(LOG_WARNING, "Lost the connection to devclusterd: %s; reconnecting\n", message);
		ast_copy_string(conn.last_logged, message, sizeof(conn.last_logged));
	} else if (strcmp(message, conn.last_logged)) {
		/* Each distinct problem once: retries are quiet. */
		if (refused) {
			ast_log(LOG_ERROR, "%s; retrying in the background (at most every %d s)\n",
				message, BACKOFF_MAX_MS / 1000);
		} else {
			ast_log(LOG_NOTICE, "%s; retrying in the background (at most every %d s)\n",
				message, BACKOFF_MAX_MS / 1000);
		}
		ast_copy_string(conn.last_logged, message, sizeof(conn.last_logged));
	}
}

static void conn_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void conn_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conn_failv(0, fmt, ap);
	va_end(ap);
}

static void conn_refused(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void conn_refused(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conn_failv(1, fmt, ap);
	va_end(ap);
}

/*! \brief The daemon refused this Asterisk's entity id */
static void conn_mismatch(const char *message)
{
	conn_close();
	conn_schedule_retry();

	ast_mutex_lock(&status_lock);
	if (status.state != LINK_MISMATCH) {
		status.since = time(NULL);
	}
	status.state = LINK_MISMATCH;
	ast_copy_string(status.mismatch, message, sizeof(status.mismatch));
	snprintf(status.last_error, sizeof(status.last_error), "entity id mismatch");
	status.daemon_known = 0;
	ast_mutex_unlock(&status_lock);

	if (strcmp(message, conn.last_logged)) {
		ast_log(LOG_ERROR, "devclusterd refused this Asterisk: %s (retrying until this is fixed)\n", message);
		ast_copy_string(conn.last_logged, message, sizeof(conn.last_logged));
	}
}

/*!
 * \brief Queue a request
 * \param cmd The command
 * \param args Its arguments (the reference is taken), or NULL
 * \return The request's id, or 0 when it could not be sent
 */
static long long conn_request(const char *cmd, struct ast_json *args)
{
	struct ast_json *request;
	char *text;
	size_t len;
	long long id;
	int res;

	if (conn.fd < 0) {
		ast_json_unref(args);
		return 0;
	}
	id = ++conn.next_id;
	request = ast_json_pack("{s: I, s: s}", "id", (ast_json_int_t) id, "cmd", cmd);
	if (!request) {
		ast_json_unref(args);
		return 0;
	}
	if (args && ast_json_object_set(request, "args", args)) {
		ast_json_unref(request);
		return 0;
	}
	text = ast_json_dump_string(request);
	ast_json_unref(request);
	if (!text) {
		return 0;
	}
	len = strlen(text);
	if (len > MAX_REQUEST_LINE) {
		ast_log(LOG_WARNING, "Not sending a %s request of %zu bytes to devclusterd (the limit is %d)\n",
			cmd, len, MAX_REQUEST_LINE);
		ast_json_free(text);
		return 0;
	}
	res = out_append_line(text, len);
	ast_json_free(text);
	return res ? 0 : id;
}

static void send_devstate_set(const char *device, enum ast_device_state state)
{
	struct ast_json *args = ast_json_pack("{s: s, s: s}", "device", device, "state", ast_devstate_str(state));

	if (args && conn_request("devstate_set", args)) {
		ast_mutex_lock(&status_lock);
		status.devstates_published++;
		ast_mutex_unlock(&status_lock);
	}
}

static void send_devstate_clear(const char *device)
{
	struct ast_json *args = ast_json_pack("{s: s}", "device", device);

	if (args && conn_request("devstate_clear", args)) {
		ast_mutex_lock(&status_lock);
		status.devstates_cleared++;
		ast_mutex_unlock(&status_lock);
	}
}

static void send_mwi_set(const char *mailbox_id, int new_msgs, int old_msgs)
{
	struct ast_json *args = ast_json_pack("{s: s, s: i, s: i}", "mailbox", mailbox_id,
		"new", new_msgs, "old", old_msgs);

	if (args && conn_request("mwi_set", args)) {
		ast_mutex_lock(&status_lock);
		status.mwi_published++;
		ast_mutex_unlock(&status_lock);
	}
}

/*! \brief Write what the socket takes now; \return -1 when the connection failed */
static int conn_flush(void)
{
	while (out_pending()) {
		ssize_t n = send(conn.fd, conn.out + conn.out_off, out_pending(), MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				return 0;
			}
			conn_fail("Writing to devclusterd at %s failed: %s", conn.path, strerror(errno));
			return -1;
		}
		conn.out_off += n;
	}
	conn.out_off = conn.out_len = 0;
	if (conn.out_cap > 1024 * 1024) {
		/* Give back the room a large re-sync took. */
		ast_free(conn.out);
		conn.out = NULL;
		conn.out_cap = 0;
	}
	return 0;
}

/*! \brief Move queued local changes to the output buffer, while it is not too full */
static void conn_drain_queue(void)
{
	struct publish_item *item;

	while (out_pending() < OUTPUT_HIGH_WATER) {
		ast_mutex_lock(&queue_lock);
		item = AST_LIST_REMOVE_HEAD(&queue_items, list);
		if (item) {
			queue_length--;
		}
		ast_mutex_unlock(&queue_lock);
		if (!item) {
			break;
		}
		switch (item->kind) {
		case PUBLISH_DEVSTATE_SET:
			send_devstate_set(item->name, item->value1);
			break;
		case PUBLISH_DEVSTATE_CLEAR:
			send_devstate_clear(item->name);
			break;
		case PUBLISH_MWI_SET:
			send_mwi_set(item->name, item->value1, item->value2);
			break;
		}
		ast_free(item);
	}
}

/*! \brief The ring, view and quorum of a members, snapshot members or status object */
static void update_ring_info(struct ast_json *info)
{
	struct ast_json *quorum;
	const char *text;
	intmax_t value;

	if (!info || ast_json_typeof(info) != AST_JSON_OBJECT) {
		return;
	}
	ast_mutex_lock(&status_lock);
	if ((text = json_string_member(info, "ring"))) {
		ast_copy_string(status.ring, text, sizeof(status.ring));
	}
	if ((text = json_string_member(info, "state"))) {
		ast_copy_string(status.ring_state, text, sizeof(status.ring_state));
	}
	if (!json_integer_member(info, "view", &value)) {
		status.view = value;
	}
	if ((quorum = json_typed_member(info, "quorum", AST_JSON_OBJECT))) {
		status.quorum_known = 1;
		status.quorate = ast_json_is_true(ast_json_object_get(quorum, "quorate"));
		if (!json_integer_member(quorum, "present", &value)) {
			status.present = value;
		}
		if (!json_integer_member(quorum, "configured", &value)) {
			status.configured = value;
		}
		ast_copy_string(status.quorum_text, S_OR(json_string_member(quorum, "text"), ""),
			sizeof(status.quorum_text));
	}
	ast_mutex_unlock(&status_lock);
}

/*! \brief Per-name values of a snapshot list, looked up without regard to case */
struct named_value {
	int value1;
	int value2;
	char name[0];
};

static int named_value_hash(const void *obj, const int flags)
{
	const char *key;

	switch (flags & OBJ_SEARCH_MASK) {
	case OBJ_SEARCH_KEY:
		key = obj;
		break;
	case OBJ_SEARCH_OBJECT:
		key = ((const struct named_value *) obj)->name;
		break;
	default:
		ast_assert(0);
		return 0;
	}
	return ast_str_case_hash(key);
}

static int named_value_cmp(void *obj, void *arg, int flags)
{
	const struct named_value *left = obj;
	const char *right;

	switch (flags & OBJ_SEARCH_MASK) {
	case OBJ_SEARCH_KEY:
		right = arg;
		break;
	case OBJ_SEARCH_OBJECT:
		right = ((const struct named_value *) arg)->name;
		break;
	default:
		return 0;
	}
	return strcasecmp(left->name, right) ? 0 : CMP_MATCH;
}

static struct ao2_container *named_values_alloc(void)
{
	return ao2_container_alloc_hash(AO2_ALLOC_OPT_LOCK_NOLOCK, 0, 257,
		named_value_hash, NULL, named_value_cmp);
}

static void named_values_add(struct ao2_container *values, const char *name, int value1, int value2)
{
	size_t len = strlen(name);
	struct named_value *entry = ao2_alloc_options(sizeof(*entry) + len + 1, NULL, AO2_ALLOC_OPT_LOCK_NOLOCK);

	if (!entry) {
		return;
	}
	entry->value1 = value1;
	entry->value2 = value2;
	memcpy(entry->name, name, len + 1);
	ao2_link(values, entry);
	ao2_ref(entry, -1);
}

/*! \brief Key of one server's entry of one device */
static char *server_entry_key(const char *device, const struct ast_eid *eid)
{
	char eid_str[EID_STR_LEN];
	struct ast_eid copy = *eid;
	char *key;

	if (ast_asprintf(&key, "%s|%s", device, ast_eid_to_str(eid_str, sizeof(eid_str), &copy)) < 0) {
		return NULL;
	}
	return key;
}

struct resync_counts {
	unsigned int remote_injected;
	unsigned int remote_removed;
	unsigned int mwi_injected;
	unsigned int local_set;
	unsigned int local_cleared;
	unsigned int mwi_set;
};

/*! \brief a) every other server's state of every device, as the snapshot has them */
static void resync_remote_devices(struct devcluster_config *cfg, struct ast_json *devices,
	struct resync_counts *counts)
{
	struct ao2_container *seen;
	struct ao2_container *cached;
	struct ao2_iterator it;
	struct stasis_message *msg;
	size_t i;
	size_t j;

	seen = named_values_alloc();
	if (!seen) {
		return;
	}
	for (i = 0; cfg->subscribe_devstate && devices && i < ast_json_array_size(devices); i++) {
		struct ast_json *device = ast_json_array_get(devices, i);
		const char *name = json_string_member(device, "device");
		struct ast_json *servers = json_typed_member(device, "servers", AST_JSON_ARRAY);

		if (ast_strlen_zero(name) || !servers || !device_matches(cfg, name)) {
			continue;
		}
		for (j = 0; j < ast_json_array_size(servers); j++) {
			struct ast_json *server = ast_json_array_get(servers, j);
			const char *eid_text = json_string_member(server, "entity_id");
			const char *state = json_string_member(server, "state");
			struct ast_eid eid;
			char *key;

			if (!eid_text || !state || ast_str_to_eid(&eid, eid_text)
				|| !ast_eid_cmp(&eid, &ast_eid_default)) {
				continue;
			}
			counts->remote_injected += remote_devstate_inject(name, ast_devstate_val(state), &eid);
			if ((key = server_entry_key(name, &eid))) {
				named_values_add(seen, key, 0, 0);
				ast_free(key);
			}
		}
	}

	/* Then drop the other servers' entries the daemon no longer has. */
	cached = stasis_cache_dump_all(ast_device_state_cache(), ast_device_state_message_type());
	if (cached) {
		it = ao2_iterator_init(cached, 0);
		for (; (msg = ao2_iterator_next(&it)); ao2_ref(msg, -1)) {
			struct ast_device_state_message *device_state = stasis_message_data(msg);
			struct named_value *found;
			char *key;

			if (!device_state->eid || !ast_eid_cmp(device_state->eid, &ast_eid_default)) {
				continue;
			}
			key = server_entry_key(device_state->device, device_state->eid);
			if (!key) {
				continue;
			}
			found = ao2_find(seen, key, OBJ_SEARCH_KEY);
			ast_free(key);
			if (found) {
				ao2_ref(found, -1);
				continue;
			}
			devstate_cache_clear(msg);
			counts->remote_removed++;
		}
		ao2_iterator_destroy(&it);
		ao2_ref(cached, -1);
	}
	ao2_ref(seen, -1);
}

/*! \brief b) the cluster's voicemail counts that other servers published */
static void resync_remote_mwi(struct devcluster_config *cfg, struct ast_json *mailboxes,
	struct resync_counts *counts)
{
	size_t i;

	for (i = 0; cfg->subscribe_mwi && mailboxes && i < ast_json_array_size(mailboxes); i++) {
		struct ast_json *record = ast_json_array_get(mailboxes, i);
		const char *mailbox = json_string_member(record, "mailbox");
		const char *context = S_OR(json_string_member(record, "context"), "default");
		const char *origin = json_string_member(record, "origin_entity_id");
		struct ast_eid eid;
		char *id;

		if (ast_strlen_zero(mailbox) || !origin || ast_str_to_eid(&eid, origin)
			|| !ast_eid_cmp(&eid, &ast_eid_default)) {
			continue;
		}
		if (ast_asprintf(&id, "%s@%s", mailbox, context) < 0) {
			continue;
		}
		if (mailbox_matches(cfg, id)) {
			counts->mwi_injected += remote_mwi_inject(mailbox, context,
				json_count_member(record, "new"), json_count_member(record, "old"), &eid);
		}
		ast_free(id);
	}
}

/*! \brief c) this server's own device states, where the daemon's copy differs */
static void resync_local_devices(struct devcluster_config *cfg, struct ast_json *local_devices,
	struct resync_counts *counts)
{
	struct ao2_container *published;
	struct ao2_container *cached;
	struct ao2_iterator it;
	struct named_value *entry;
	struct stasis_message *msg;
	size_t i;

	published = named_values_alloc();
	if (!published) {
		return;
	}
	for (i = 0; local_devices && i < ast_json_array_size(local_devices); i++) {
		struct ast_json *record = ast_json_array_get(local_devices, i);
		const char *device = json_string_member(record, "device");
		const char *state = json_string_member(record, "state");

		if (!ast_strlen_zero(device) && state) {
			named_values_add(published, device, ast_devstate_val(state), 0);
		}
	}

	cached = cfg->publish_devstate
		? stasis_cache_dump(ast_device_state_cache(), ast_device_state_message_type()) : NULL;
	if (cached) {
		it = ao2_iterator_init(cached, 0);
		for (; (msg = ao2_iterator_next(&it)); ao2_ref(msg, -1)) {
			struct ast_device_state_message *device_state = stasis_message_data(msg);

			if (device_state->cachable != AST_DEVSTATE_CACHABLE || !device_matches(cfg, device_state->device)) {
				continue;
			}
			entry = ao2_find(published, device_state->device, OBJ_SEARCH_KEY | OBJ_UNLINK);
			if (!entry || entry->value1 != (int) device_state->state) {
				send_devstate_set(device_state->device, device_state->state);
				counts->local_set++;
			}
			ao2_cleanup(entry);
		}
		ao2_iterator_destroy(&it);
		ao2_ref(cached, -1);
	}

	/* What is left, Asterisk no longer has (or no longer shares). */
	it = ao2_iterator_init(published, 0);
	for (; (entry = ao2_iterator_next(&it)); ao2_ref(entry, -1)) {
		send_devstate_clear(entry->name);
		counts->local_cleared++;
	}
	ao2_iterator_destroy(&it);
	ao2_ref(published, -1);
}

/*! \brief d) this server's own voicemail counts, where the daemon's copy differs */
static void resync_local_mwi(struct devcluster_config *cfg, struct ast_json *local_mailboxes,
	struct resync_counts *counts)
{
	struct ao2_container *published;
	struct ao2_container *cached;
	struct ao2_iterator it;
	struct stasis_message *msg;
	size_t i;

	if (!cfg->publish_mwi) {
		return;
	}
	published = named_values_alloc();
	if (!published) {
		return;
	}
	for (i = 0; local_mailboxes && i < ast_json_array_size(local_mailboxes); i++) {
		struct ast_json *record = ast_json_array_get(local_mailboxes, i);
		const char *mailbox = json_string_member(record, "mailbox");
		const char *context = S_OR(json_string_member(record, "context"), "default");
		char *id;

		if (ast_strlen_zero(mailbox) || ast_asprintf(&id, "%s@%s", mailbox, context) < 0) {
			continue;
		}
		named_values_add(published, id, json_count_member(record, "new"), json_count_member(record, "old"));
		ast_free(id);
	}

	cached = stasis_cache_dump(ast_mwi_state_cache(), ast_mwi_state_type());
	if (cached) {
		it = ao2_iterator_init(cached, 0);
		for (; (msg = ao2_iterator_next(&it)); ao2_ref(msg, -1)) {
			struct ast_mwi_state *mwi_state = stasis_message_data(msg);
			struct named_value *entry;
			char *id;

			if (ast_eid_cmp(&mwi_state->eid, &ast_eid_default) || ast_strlen_zero(mwi_state->uniqueid)) {
				continue;
			}
			id = mailbox_id_normalize(mwi_state->uniqueid);
			if (!id || !mailbox_matches(cfg, id)) {
				ast_free(id);
				continue;
			}
			entry = ao2_find(published, id, OBJ_SEARCH_KEY);
			if (!entry || entry->value1 != mwi_state->new_msgs || entry->value2 != mwi_state->old_msgs) {
				send_mwi_set(id, mwi_state->new_msgs, mwi_state->old_msgs);
				counts->mwi_set++;
			}
			ao2_cleanup(entry);
			ast_free(id);
		}
		ao2_iterator_destroy(&it);
		ao2_ref(cached, -1);
	}
	ao2_ref(published, -1);
}

/*! \brief Bring Asterisk and the daemon in line from a snapshot */
static void resync(struct ast_json *snapshot, const char *why)
{
	struct devcluster_config *cfg = ao2_global_obj_ref(global_config);
	struct resync_counts counts = { 0, };

	if (!cfg) {
		return;
	}
	update_ring_info(json_typed_member(snapshot, "members", AST_JSON_OBJECT));

	resync_remote_devices(cfg, json_typed_member(snapshot, "devices", AST_JSON_ARRAY), &counts);
	resync_remote_mwi(cfg, json_typed_member(snapshot, "mailboxes", AST_JSON_ARRAY), &counts);

	/*
	 * Accept local changes before reading Asterisk's caches: a change made
	 * meanwhile is then sent twice at worst, never lost.
	 */
	ast_mutex_lock(&queue_lock);
	queue_accepting = 1;
	ast_mutex_unlock(&queue_lock);

	resync_local_devices(cfg, json_typed_member(snapshot, "local_devices", AST_JSON_ARRAY), &counts);
	resync_local_mwi(cfg, json_typed_member(snapshot, "local_mailboxes", AST_JSON_ARRAY), &counts);

	ast_mutex_lock(&status_lock);
	status.resyncs++;
	status.remote_injected += counts.remote_injected;
	status.remote_cleared += counts.remote_removed;
	status.mwi_injected += counts.mwi_injected;
	ast_mutex_unlock(&status_lock);

	ast_log(LOG_NOTICE, "Synchronised with devclusterd (%s): other servers' device states %u set, %u removed; "
		"MWI %u set; own device states %u published, %u cleared; own MWI %u published\n",
		why, counts.remote_injected, counts.remote_removed, counts.mwi_injected,
		counts.local_set, counts.local_cleared, counts.mwi_set);
	ao2_ref(cfg, -1);
}

static void event_server_device(struct ast_json *data)
{
	const char *device = json_string_member(data, "device");
	const char *eid_text = json_string_member(data, "entity_id");
	struct ast_json *state = ast_json_object_get(data, "state");
	struct devcluster_config *cfg;
	struct ast_eid eid;
	unsigned int suppressed;
	int changed = 0;

	if (ast_strlen_zero(device) || !eid_text || ast_str_to_eid(&eid, eid_text)
		|| !state || (ast_json_typeof(state) != AST_JSON_STRING && ast_json_typeof(state) != AST_JSON_NULL)) {
		if (warning_allowed(&bad_event_limit, &suppressed)) {
			ast_log(LOG_WARNING, "Ignored a malformed server_device event from devclusterd\n");
		}
		return;
	}
	if (!ast_eid_cmp(&eid, &ast_eid_default)) {
		return;
	}
	cfg = ao2_global_obj_ref(global_config);
	if (!cfg || !cfg->subscribe_devstate || !device_matches(cfg, device)) {
		ao2_cleanup(cfg);
		return;
	}
	ao2_ref(cfg, -1);

	if (ast_json_typeof(state) == AST_JSON_NULL) {
		changed = remote_devstate_remove(device, &eid);
		ast_mutex_lock(&status_lock);
		status.remote_cleared += changed;
		ast_mutex_unlock(&status_lock);
	} else {
		changed = remote_devstate_inject(device, ast_devstate_val(ast_json_string_get(state)), &eid);
		ast_mutex_lock(&status_lock);
		status.remote_injected += changed;
		ast_mutex_unlock(&status_lock);
	}
}

static void event_server_left(struct ast_json *data)
{
	const char *eid_text = json_string_member(data, "entity_id");
	const char *name = S_OR(json_string_member(data, "name"), "?");
	struct ast_eid eid;
	intmax_t nodeid = 0;
	unsigned int suppressed;
	int count;

	if (!eid_text || ast_str_to_eid(&eid, eid_text)) {
		if (warning_allowed(&bad_event_limit, &suppressed)) {
			ast_log(LOG_WARNING, "Ignored a malformed server_left event from devclusterd\n");
		}
		return;
	}
	if (!ast_eid_cmp(&eid, &ast_eid_default)) {
		return;
	}
	json_integer_member(data, "nodeid", &nodeid);
	count = remote_devstate_purge(&eid);
	ast_log(LOG_NOTICE, "Server %s (node %jd, entity id %s) left the cluster: cleared its %d device state%s\n",
		name, nodeid, eid_text, count, count == 1 ? "" : "s");

	ast_mutex_lock(&status_lock);
	status.servers_left++;
	status.entries_purged += count;
	ast_mutex_unlock(&status_lock);
}

static void event_mwi(struct ast_json *data)
{
	const char *mailbox = json_string_member(data, "mailbox");
	const char *context = S_OR(json_string_member(data, "context"), "default");
	const char *origin = json_string_member(data, "origin_entity_id");
	struct devcluster_config *cfg;
	struct ast_eid eid;
	unsigned int suppressed;
	char *id;
	int changed;

	if (ast_strlen_zero(mailbox)) {
		if (warning_allowed(&bad_event_limit, &suppressed)) {
			ast_log(LOG_WARNING, "Ignored a malformed mwi event from devclusterd\n");
		}
		return;
	}
	if (!origin || ast_str_to_eid(&eid, origin) || !ast_eid_cmp(&eid, &ast_eid_default)) {
		/* Our own, or of no known origin: nothing to inject. */
		return;
	}
	cfg = ao2_global_obj_ref(global_config);
	if (!cfg || !cfg->subscribe_mwi || ast_asprintf(&id, "%s@%s", mailbox, context) < 0) {
		ao2_cleanup(cfg);
		return;
	}
	if (mailbox_matches(cfg, id)) {
		changed = remote_mwi_inject(mailbox, context, json_count_member(data, "new"),
			json_count_member(data, "old"), &eid);
		ast_mutex_lock(&status_lock);
		status.mwi_injected += changed;
		ast_mutex_unlock(&status_lock);
	}
	ast_free(id);
	ao2_ref(cfg, -1);
}

static void event_membership(struct ast_json *data)
{
	const char *change = json_string_member(data, "change");

	if (!change) {
		return;
	}
	/* The counts of the quorum change without a quorum event: ask for the status soon. */
	conn.next_refresh = 0;
	if (!strcmp(change, "view") || !strcmp(change, "quorum")) {
		update_ring_info(data);
	} else if (!strcmp(change, "joined") || !strcmp(change, "left")) {
		ast_debug(1, "devclusterd: %s (node %jd) %s the ring\n",
			S_OR(json_string_member(data, "name"), "?"),
			(intmax_t) ast_json_integer_get(ast_json_object_get(data, "nodeid")), change);
	}
}

static void handle_event(const char *name, struct ast_json *data)
{
	if (conn.phase != PHASE_READY || !data || ast_json_typeof(data) != AST_JSON_OBJECT) {
		return;
	}
	if (!strcmp(name, "server_device")) {
		event_server_device(data);
	} else if (!strcmp(name, "server_left")) {
		event_server_left(data);
	} else if (!strcmp(name, "mwi")) {
		event_mwi(data);
	} else if (!strcmp(name, "membership")) {
		event_membership(data);
	}
	/* Other events are for other clients. */
}

/*! \brief The error of a failed response, as "message (code)" */
static void response_error(struct ast_json *response, char *buf, size_t len, const char **code)
{
	struct ast_json *error = ast_json_object_get(response, "error");
	const char *message = json_string_member(error, "message");

	*code = json_string_member(error, "code");
	snprintf(buf, len, "%s (%s)", S_OR(message, "no message"), S_OR(*code, "no code"));
}

static void conn_ready(struct ast_json *result)
{
	struct ast_json *snapshot = json_typed_member(result, "snapshot", AST_JSON_OBJECT);
	char eid_str[EID_STR_LEN];
	struct devcluster_status copy;

	if (!snapshot) {
		conn_refused("devclusterd at %s answered subscribe without a snapshot", conn.path);
		return;
	}
	conn.phase = PHASE_READY;
	conn.handshake_id = 0;
	conn.backoff_ms = BACKOFF_MIN_MS;
	conn.next_refresh = monotonic_ms() + STATUS_REFRESH_MS;
	conn.last_logged[0] = '\0';

	ast_mutex_lock(&status_lock);
	status.state = LINK_CONNECTED;
	status.since = time(NULL);
	status.attempts = 0;
	status.last_error[0] = '\0';
	status.mismatch[0] = '\0';
	status.connects++;
	copy = status;
	ast_mutex_unlock(&status_lock);

	ast_log(LOG_NOTICE, "Connected to devclusterd at %s: node %u (%s) of cluster '%s', entity id %s\n",
		conn.path, copy.nodeid, copy.node_name, copy.cluster, our_eid_str(eid_str, sizeof(eid_str)));

	ast_mutex_lock(&queue_lock);
	want_resync = 0;
	ast_mutex_unlock(&queue_lock);
	resync(snapshot, conn.ever_connected ? "reconnected" : "connected");
	conn.ever_connected = 1;
}

static void handle_handshake(int ok, struct ast_json *response)
{
	struct ast_json *result = json_typed_member(response, "result", AST_JSON_OBJECT);
	char error[768] = "";
	const char *code = NULL;
	char eid_str[EID_STR_LEN];
	struct ast_json *args;
	intmax_t value;

	if (!ok) {
		response_error(response, error, sizeof(error), &code);
	}
	switch (conn.phase) {
	case PHASE_HELLO:
		if (!ok) {
			conn_refused("devclusterd at %s refused hello: %s", conn.path, error);
			return;
		}
		if (json_integer_member(result, "protocol", &value)) {
			conn_refused("devclusterd at %s did not say which control protocol it speaks; "
				"res_devcluster speaks protocol %d", conn.path, PROTOCOL_VERSION);
			return;
		}
		if (value != PROTOCOL_VERSION) {
			conn_refused("devclusterd at %s speaks control protocol %jd; res_devcluster speaks protocol %d "
				"(install matching versions)", conn.path, value, PROTOCOL_VERSION);
			return;
		}
		ast_mutex_lock(&status_lock);
		ast_copy_string(status.version, S_OR(json_string_member(result, "version"), ""), sizeof(status.version));
		ast_mutex_unlock(&status_lock);

		args = ast_json_pack("{s: s, s: s, s: s}",
			"entity_id", our_eid_str(eid_str, sizeof(eid_str)),
			"name", "res_devcluster",
			"version", ast_get_version());
		if (args && !ast_strlen_zero(ast_config_AST_SYSTEM_NAME) && strlen(ast_config_AST_SYSTEM_NAME) <= 64) {
			/* Optional: asterisk.conf [options] systemname, when set. */
			ast_json_object_set(args, "system_name", ast_json_string_create(ast_config_AST_SYSTEM_NAME));
		}
		conn.phase = PHASE_REGISTER;
		conn.handshake_id = args ? conn_request("adapter_register", args) : 0;
		if (!conn.handshake_id) {
			conn_fail("Could not send adapter_register to devclusterd");
		}
		return;
	case PHASE_REGISTER:
		if (!ok) {
			if (code && !strcmp(code, "entity_mismatch")) {
				conn_mismatch(S_OR(json_string_member(ast_json_object_get(response, "error"), "message"), error));
			} else {
				conn_refused("devclusterd at %s refused adapter_register: %s", conn.path, error);
			}
			return;
		} else {
			const char *daemon_eid = json_string_member(result, "entity_id");
			struct ast_eid eid;

			if (!daemon_eid || ast_str_to_eid(&eid, daemon_eid) || ast_eid_cmp(&eid, &ast_eid_default)) {
				char message[256];

				snprintf(message, sizeof(message), "devclusterd at %s registered this Asterisk (entity id %s) "
					"but names its own entity id %s", conn.path, our_eid_str(eid_str, sizeof(eid_str)),
					S_OR(daemon_eid, "(none)"));
				conn_mismatch(message);
				return;
			}
			ast_mutex_lock(&status_lock);
			status.daemon_known = 1;
			status.ring[0] = status.ring_state[0] = status.quorum_text[0] = '\0';
			status.view = 0;
			status.quorum_known = 0;
			status.nodeid = json_integer_member(result, "nodeid", &value) ? 0 : value;
			ast_copy_string(status.node_name, S_OR(json_string_member(result, "name"), ""), sizeof(status.node_name));
			ast_copy_string(status.cluster, S_OR(json_string_member(result, "cluster"), ""), sizeof(status.cluster));
			ast_copy_string(status.entity_id, daemon_eid, sizeof(status.entity_id));
			ast_mutex_unlock(&status_lock);
		}
		args = ast_json_pack("{s: [s, s, s], s: b}", "topics", "servers", "mwi", "membership", "snapshot", 1);
		conn.phase = PHASE_SUBSCRIBE;
		conn.handshake_id = args ? conn_request("subscribe", args) : 0;
		if (!conn.handshake_id) {
			conn_fail("Could not send subscribe to devclusterd");
		}
		return;
	case PHASE_SUBSCRIBE:
		if (!ok) {
			conn_refused("devclusterd at %s refused subscribe: %s", conn.path, error);
			return;
		}
		conn_ready(result);
		return;
	default:
		return;
	}
}

static void handle_response(struct ast_json *response)
{
	struct ast_json *id_json = ast_json_object_get(response, "id");
	int ok = ast_json_is_true(ast_json_object_get(response, "ok"));
	long long id = 0;
	char error[768];
	const char *code;
	unsigned int suppressed;

	if (id_json && ast_json_typeof(id_json) == AST_JSON_INTEGER) {
		id = ast_json_integer_get(id_json);
	}
	if (id && id == conn.handshake_id) {
		handle_handshake(ok, response);
		return;
	}
	if (id && id == conn.snapshot_id) {
		conn.snapshot_id = 0;
		if (!ok || !json_typed_member(response, "result", AST_JSON_OBJECT)) {
			response_error(response, error, sizeof(error), &code);
			conn_refused("devclusterd at %s refused snapshot: %s", conn.path, error);
			return;
		}
		resync(ast_json_object_get(response, "result"), "full re-sync");
		return;
	}
	if (id && id == conn.status_id) {
		conn.status_id = 0;
		if (ok) {
			update_ring_info(json_typed_member(response, "result", AST_JSON_OBJECT));
		}
		return;
	}
	if (!ok) {
		response_error(response, error, sizeof(error), &code);
		ast_mutex_lock(&status_lock);
		status.request_errors++;
		ast_mutex_unlock(&status_lock);
		if (warning_allowed(&request_error_limit, &suppressed)) {
			ast_log(LOG_WARNING, "devclusterd refused a request: %s%s\n", error,
				suppressed ? " (and more errors not shown)" : "");
		}
	}
}

static void handle_line(const char *line, size_t len)
{
	struct ast_json *message;
	struct ast_json_error error;
	const char *event;
	unsigned int suppressed;

	message = ast_json_load_buf(line, len, &error);
	if (!message || ast_json_typeof(message) != AST_JSON_OBJECT) {
		ast_mutex_lock(&status_lock);
		status.bad_lines++;
		ast_mutex_unlock(&status_lock);
		if (warning_allowed(&bad_line_limit, &suppressed)) {
			ast_log(LOG_WARNING, "Ignored a line from devclusterd that is not a JSON object (%s)%s\n",
				message ? "another JSON value" : error.text, suppressed ? " (and more not shown)" : "");
		}
		ast_json_unref(message);
		return;
	}
	event = json_string_member(message, "event");
	if (event) {
		handle_event(event, ast_json_object_get(message, "data"));
	} else {
		handle_response(message);
	}
	ast_json_unref(message);
}

/*! \brief Handle the complete lines read; \return -1 when the connection was closed meanwhile */
static int conn_process_input(size_t scan_from)
{
	size_t start = 0;
	size_t i;
	unsigned int suppressed;

	for (i = scan_from; i < conn.in_len; i++) {
		size_t len;

		if (conn.in[i] != '\n') {
			continue;
		}
		len = i - start;
		if (conn.discarding) {
			conn.discarding = 0;
		} else {
			if (len && conn.in[start + len - 1] == '\r') {
				len--;
			}
			if (len) {
				handle_line(conn.in + start, len);
				if (conn.fd < 0) {
					return -1;
				}
			}
		}
		start = i + 1;
	}
	if (start) {
		memmove(conn.in, conn.in + start, conn.in_len - start);
		conn.in_len -= start;
	}
	if (conn.in_len > MAX_RESPONSE_LINE) {
		if (!conn.discarding) {
			ast_mutex_lock(&status_lock);
			status.bad_lines++;
			ast_mutex_unlock(&status_lock);
			if (warning_allowed(&bad_line_limit, &suppressed)) {
				ast_log(LOG_WARNING, "Ignoring a line from devclusterd longer than %d bytes\n", MAX_RESPONSE_LINE);
			}
		}
		conn.discarding = 1;
		conn.in_len = 0;
	}
	return 0;
}

/*! \brief Read what the daemon sent; \return -1 when the connection was closed */
static int conn_read(void)
{
	int rounds;

	for (rounds = 0; rounds < 64; rounds++) {
		size_t scan_from = conn.in_len;
		ssize_t n;

		if (conn.in_cap - conn.in_len < 4096) {
			size_t cap = conn.in_cap ? conn.in_cap * 2 : 65536 + 4096;
			char *grown;

			if (cap > MAX_RESPONSE_LINE + 8192) {
				cap = MAX_RESPONSE_LINE + 8192;
			}
			grown = ast_realloc(conn.in, cap);
			if (!grown) {
				conn_fail("Out of memory reading from devclusterd");
				return -1;
			}
			conn.in = grown;
			conn.in_cap = cap;
		}
		n = recv(conn.fd, conn.in + conn.in_len, conn.in_cap - conn.in_len, 0);
		if (n == 0) {
			conn_fail("devclusterd at %s closed the connection", conn.path);
			return -1;
		}
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				break;
			}
			conn_fail("Reading from devclusterd at %s failed: %s", conn.path, strerror(errno));
			return -1;
		}
		conn.in_len += n;
		if (conn_process_input(scan_from)) {
			return -1;
		}
	}
	/* Give back the room a huge snapshot took. */
	if (conn.in_cap > 1024 * 1024 && conn.in_len < 65536) {
		char *shrunk = ast_realloc(conn.in, 65536 + 4096);

		if (shrunk) {
			conn.in = shrunk;
			conn.in_cap = 65536 + 4096;
		}
	}
	return 0;
}

static const char *connect_error_text(int error)
{
	switch (error) {
	case ENOENT:
		return "no daemon is running (the socket does not exist)";
	case ECONNREFUSED:
		return "no daemon is running (connection refused)";
	case EACCES:
	case EPERM:
		return "permission denied (devclusterd's [control] must list Asterisk's user, and its control_socket_group must let it reach the socket)";
	case EAGAIN:
		return "the daemon's listen queue is full";
	default:
		return strerror(error);
	}
}

/*!
 * \brief Whether the process serving a connected socket is root or this process's own user
 *
 * Someone who created the socket path first (in a directory others may write to) could
 * otherwise answer as devclusterd and feed Asterisk device states; the devclusterd CLI makes
 * the same check.
 */
static int peer_is_trusted(int fd, char *reason, size_t reason_len)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		snprintf(reason, reason_len, "cannot tell who serves the socket: %s", strerror(errno));
		return 0;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		snprintf(reason, reason_len, "the socket is served by uid %u (pid %d), which is neither root nor "
			"Asterisk's uid %u: not devclusterd, refusing it", (unsigned int) cred.uid, (int) cred.pid,
			(unsigned int) geteuid());
		return 0;
	}
	return 1;
}

/*! \brief The socket is connected: check who serves it, then start the handshake */
static void conn_connected(void)
{
	char reason[256];

	if (!peer_is_trusted(conn.fd, reason, sizeof(reason))) {
		conn_refused("devclusterd at %s: %s", conn.path, reason);
		return;
	}
	conn.phase = PHASE_HELLO;
	conn.deadline = monotonic_ms() + HANDSHAKE_TIMEOUT_MS;
	link_status_set(LINK_HANDSHAKE, 0);
	conn.handshake_id = conn_request("hello", NULL);
	if (!conn.handshake_id) {
		conn_fail("Could not send hello to devclusterd");
	}
}

static void conn_start(void)
{
	struct devcluster_config *cfg = ao2_global_obj_ref(global_config);
	struct sockaddr_un addr = { .sun_family = AF_UNIX, };

	if (!cfg) {
		conn_schedule_retry();
		return;
	}
	ast_copy_string(conn.path, cfg->socket_path, sizeof(conn.path));
	ao2_ref(cfg, -1);

	ast_mutex_lock(&status_lock);
	status.attempts++;
	ast_mutex_unlock(&status_lock);
	link_status_set(LINK_CONNECTING, 0);

	conn.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (conn.fd < 0) {
		conn_fail("Cannot create a socket for devclusterd: %s", strerror(errno));
		return;
	}
	ast_copy_string(addr.sun_path, conn.path, sizeof(addr.sun_path));
	if (!connect(conn.fd, (struct sockaddr *) &addr, sizeof(addr))) {
		conn_connected();
	} else if (errno == EINPROGRESS) {
		conn.phase = PHASE_CONNECTING;
		conn.deadline = monotonic_ms() + HANDSHAKE_TIMEOUT_MS;
	} else {
		conn_fail("Cannot connect to devclusterd at %s: %s", conn.path, connect_error_text(errno));
	}
}

static void conn_io(short revents)
{
	if (conn.phase == PHASE_CONNECTING) {
		int error = 0;
		socklen_t len = sizeof(error);

		if (getsockopt(conn.fd, SOL_SOCKET, SO_ERROR, &error, &len)) {
			error = errno;
		}
		if (error) {
			conn_fail("Cannot connect to devclusterd at %s: %s", conn.path, connect_error_text(error));
		} else if (revents & POLLOUT) {
			conn_connected();
		}
		return;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		if (conn_read()) {
			return;
		}
	}
	if (conn.fd > -1 && out_pending()) {
		conn_flush();
	}
}

static void *devcluster_thread(void *unused attribute_unused)
{
	for (;;) {
		struct pollfd pfds[2];
		int nfds = 1;
		int stop;
		int reconnect;
		int resync_wanted;
		int64_t now;
		int64_t wake_at;
		int timeout;

		ast_mutex_lock(&queue_lock);
		stop = want_stop;
		reconnect = want_reconnect;
		want_reconnect = 0;
		resync_wanted = want_resync;
		ast_mutex_unlock(&queue_lock);
		if (stop) {
			break;
		}

		if (reconnect) {
			if (conn.fd > -1) {
				ast_log(LOG_NOTICE, "res_devcluster's socket changed: reconnecting\n");
				conn_close();
				link_status_set(LINK_DISCONNECTED, 1);
			}
			conn.retry_at = 0;
			conn.backoff_ms = BACKOFF_MIN_MS;
			conn.last_logged[0] = '\0';
		}

		now = monotonic_ms();
		if (conn.fd < 0 && now >= conn.retry_at) {
			conn_start();
		}
		if (conn.phase == PHASE_READY) {
			if (resync_wanted && !conn.snapshot_id) {
				ast_mutex_lock(&queue_lock);
				want_resync = 0;
				ast_mutex_unlock(&queue_lock);
				conn.snapshot_id = conn_request("snapshot", NULL);
			}
			conn_drain_queue();
			if (now >= conn.next_refresh) {
				if (!conn.status_id) {
					conn.status_id = conn_request("status", NULL);
				}
				conn.next_refresh = now + STATUS_REFRESH_MS;
			}
		}
		if (conn.fd > -1 && conn.phase != PHASE_CONNECTING && out_pending()) {
			conn_flush();
		}

		now = monotonic_ms();
		if (conn.fd < 0) {
			wake_at = conn.retry_at;
		} else if (conn.phase != PHASE_READY) {
			wake_at = conn.deadline;
		} else {
			wake_at = conn.next_refresh;
		}
		timeout = wake_at <= now ? 0 : (int) MIN(wake_at - now, 60000);

		pfds[0].fd = ast_alertpipe_readfd(alert_pipe);
		pfds[0].events = POLLIN;
		pfds[0].revents = 0;
		if (conn.fd > -1) {
			pfds[1].fd = conn.fd;
			pfds[1].events = conn.phase == PHASE_CONNECTING ? POLLOUT : POLLIN | (out_pending() ? POLLOUT : 0);
			pfds[1].revents = 0;
			nfds = 2;
		}
		if (ast_poll(pfds, nfds, timeout) < 0) {
			if (errno != EINTR) {
				ast_log(LOG_ERROR, "poll() failed: %s\n", strerror(errno));
				usleep(100000);
			}
			continue;
		}
		if (pfds[0].revents) {
			ast_mutex_lock(&queue_lock);
			ast_alertpipe_read(alert_pipe);
			wake_pending = 0;
			ast_mutex_unlock(&queue_lock);
		}
		if (nfds == 2 && pfds[1].revents && conn.fd == pfds[1].fd) {
			conn_io(pfds[1].revents);
		}
		if (conn.fd > -1 && conn.phase != PHASE_READY && monotonic_ms() >= conn.deadline) {
			conn_fail("devclusterd at %s did not answer within %d s", conn.path, HANDSHAKE_TIMEOUT_MS / 1000);
		}
	}

	conn_close();
	ast_free(conn.in);
	conn.in = NULL;
	conn.in_cap = 0;
	ast_free(conn.out);
	conn.out = NULL;
	conn.out_cap = 0;
	return NULL;
}

/*! @} */

/*! \name CLI
 * @{ */

/*!
 * \brief One request on a short-lived connection of its own, with a hard timeout
 * \return The response object, or NULL with the reason in \a reason
 */
static struct ast_json *cli_daemon_request(const char *cmd, int timeout_ms, char *reason, size_t reason_len)
{
	struct devcluster_config *cfg = ao2_global_obj_ref(global_config);
	struct sockaddr_un addr = { .sun_family = AF_UNIX, };
	int64_t deadline = monotonic_ms() + timeout_ms;
	struct ast_json *response = NULL;
	char request[128];
	size_t request_len;
	size_t sent = 0;
	char *buf = NULL;
	size_t buf_len = 0;
	size_t buf_cap = 0;
	int connected = 0;
	int fd;

	if (!cfg) {
		snprintf(reason, reason_len, "res_devcluster has no configuration");
		return NULL;
	}
	ast_copy_string(addr.sun_path, cfg->socket_path, sizeof(addr.sun_path));
	ao2_ref(cfg, -1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(reason, reason_len, "cannot create a socket: %s", strerror(errno));
		return NULL;
	}
	if (!connect(fd, (struct sockaddr *) &addr, sizeof(addr))) {
		connected = 1;
	} else if (errno != EINPROGRESS) {
		snprintf(reason, reason_len, "cannot connect to %s: %s", addr.sun_path, connect_error_text(errno));
		close(fd);
		return NULL;
	}
	request_len = snprintf(request, sizeof(request), "{\"id\":1,\"cmd\":\"%s\"}\n", cmd);

	while (!response) {
		struct pollfd pfd = { .fd = fd, };
		int64_t left = deadline - monotonic_ms();
		int res;

		if (left <= 0) {
			snprintf(reason, reason_len, "devclusterd at %s did not answer within %d ms", addr.sun_path, timeout_ms);
			break;
		}
		pfd.events = !connected || sent < request_len ? POLLOUT : POLLIN;
		res = ast_poll(&pfd, 1, (int) left);
		if (res < 0) {
			if (errno == EINTR) {
				continue;
			}
			snprintf(reason, reason_len, "poll() failed: %s", strerror(errno));
			break;
		}
		if (!res) {
			continue;
		}
		if (!connected) {
			int error = 0;
			socklen_t len = sizeof(error);

			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len)) {
				error = errno;
			}
			if (error) {
				snprintf(reason, reason_len, "cannot connect to %s: %s", addr.sun_path, connect_error_text(error));
				break;
			}
			connected = 1;
			continue;
		}
		if (!sent && !peer_is_trusted(fd, reason, reason_len)) {
			break;
		}
		if (sent < request_len) {
			ssize_t n = send(fd, request + sent, request_len - sent, MSG_NOSIGNAL);

			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				snprintf(reason, reason_len, "writing to %s failed: %s", addr.sun_path, strerror(errno));
				break;
			}
			sent += n > 0 ? n : 0;
			continue;
		} else {
			ssize_t n;
			char *newline;

			if (buf_cap - buf_len < 4096) {
				size_t cap = buf_cap ? buf_cap * 2 : 65536;
				char *grown;

				if (cap > MAX_RESPONSE_LINE + 8192) {
					snprintf(reason, reason_len, "devclusterd's answer is longer than %d bytes", MAX_RESPONSE_LINE);
					break;
				}
				grown = ast_realloc(buf, cap);
				if (!grown) {
					snprintf(reason, reason_len, "out of memory");
					break;
				}
				buf = grown;
				buf_cap = cap;
			}
			n = recv(fd, buf + buf_len, buf_cap - buf_len, 0);
			if (n == 0) {
				snprintf(reason, reason_len, "devclusterd at %s closed the connection", addr.sun_path);
				break;
			}
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR) {
					continue;
				}
				snprintf(reason, reason_len, "reading from %s failed: %s", addr.sun_path, strerror(errno));
				break;
			}
			buf_len += n;
			while (!response && (newline = memchr(buf, '\n', buf_len))) {
				size_t line_len = newline - buf;
				struct ast_json *message = ast_json_load_buf(buf, line_len, NULL);
				intmax_t id;

				if (message && !json_integer_member(message, "id", &id) && id == 1) {
					response = message;
				} else {
					/* An event, or something else: not our answer. */
					ast_json_unref(message);
				}
				memmove(buf, newline + 1, buf_len - line_len - 1);
				buf_len -= line_len + 1;
			}
		}
	}
	ast_free(buf);
	close(fd);
	return response;
}

/*! \brief The result of a CLI request, or NULL after telling the CLI why not */
static struct ast_json *cli_daemon_result(int fd, const char *cmd, int timeout_ms, struct ast_json **response)
{
	char reason[512];
	char error[768];
	const char *code;
	struct ast_json *result;

	*response = cli_daemon_request(cmd, timeout_ms, reason, sizeof(reason));
	if (!*response) {
		ast_cli(fd, "devclusterd is not reachable: %s\n", reason);
		return NULL;
	}
	if (!ast_json_is_true(ast_json_object_get(*response, "ok"))) {
		response_error(*response, error, sizeof(error), &code);
		ast_cli(fd, "devclusterd refused '%s': %s\n", cmd, error);
		return NULL;
	}
	result = json_typed_member(*response, "result", AST_JSON_OBJECT);
	if (!result) {
		ast_cli(fd, "devclusterd answered '%s' without a result\n", cmd);
	}
	return result;
}

static void format_time(char *buf, size_t len, time_t when)
{
	struct timeval tv = { .tv_sec = when, };
	struct ast_tm tm;

	ast_localtime(&tv, &tm, NULL);
	ast_strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static void format_duration(char *buf, size_t len, time_t seconds)
{
	if (seconds < 0) {
		seconds = 0;
	}
	if (seconds >= 86400) {
		snprintf(buf, len, "%ldd %02ld:%02ld:%02ld", (long) (seconds / 86400), (long) (seconds % 86400 / 3600),
			(long) (seconds % 3600 / 60), (long) (seconds % 60));
	} else {
		snprintf(buf, len, "%02ld:%02ld:%02ld", (long) (seconds / 3600), (long) (seconds % 3600 / 60),
			(long) (seconds % 60));
	}
}

static char *handle_show_status(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	struct devcluster_status copy;
	struct devcluster_config *cfg;
	char when[64];
	char duration[64];
	char eid_str[EID_STR_LEN];
	unsigned int queued;

	switch (cmd) {
	case CLI_INIT:
		e->command = "devcluster show status";
		e->usage =
			"Usage: devcluster show status\n"
			"       Show the connection to devclusterd, the daemon's node, ring and\n"
			"       quorum, and what res_devcluster has published and injected.\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	if (a->argc != e->args) {
		return CLI_SHOWUSAGE;
	}

	ast_mutex_lock(&status_lock);
	copy = status;
	ast_mutex_unlock(&status_lock);
	ast_mutex_lock(&queue_lock);
	queued = queue_length;
	ast_mutex_unlock(&queue_lock);
	cfg = ao2_global_obj_ref(global_config);

	format_time(when, sizeof(when), copy.since);
	format_duration(duration, sizeof(duration), time(NULL) - copy.since);

	ast_cli(a->fd, "\n"
		"=============================================================\n"
		"=== res_devcluster status ===================================\n"
		"=============================================================\n"
		"===\n");
	switch (copy.state) {
	case LINK_CONNECTED:
		ast_cli(a->fd, "=== Connection: connected since %s (%s)\n", when, duration);
		break;
	case LINK_MISMATCH:
		ast_cli(a->fd, "=== Connection: REFUSED: entity id mismatch, since %s (%s); %u attempts, retrying\n",
			when, duration, copy.attempts);
		ast_cli(a->fd, "=== Daemon says: %s\n", copy.mismatch);
		break;
	case LINK_CONNECTING:
	case LINK_HANDSHAKE:
	case LINK_DISCONNECTED:
		if (copy.since) {
			ast_cli(a->fd, "=== Connection: disconnected since %s (%s)%s; %u connection attempt%s\n",
				when, duration, copy.state == LINK_DISCONNECTED ? "" : ", connecting",
				copy.attempts, copy.attempts == 1 ? "" : "s");
		} else {
			ast_cli(a->fd, "=== Connection: never connected%s; %u connection attempt%s\n",
				copy.state == LINK_DISCONNECTED ? "" : ", connecting",
				copy.attempts, copy.attempts == 1 ? "" : "s");
		}
		if (!ast_strlen_zero(copy.last_error)) {
			ast_cli(a->fd, "=== Last error: %s\n", copy.last_error);
		}
		break;
	}
	ast_cli(a->fd, "=== Socket: %s\n", cfg ? cfg->socket_path : "?");
	ast_cli(a->fd, "=== Entity ID: %s (this Asterisk)\n", our_eid_str(eid_str, sizeof(eid_str)));
	if (copy.daemon_known) {
		ast_cli(a->fd, "=== Daemon%s: devclusterd %s, node %u (%s) of cluster '%s', entity id %s\n",
			copy.state == LINK_CONNECTED ? "" : " (as last seen)",
			S_OR(copy.version, "?"), copy.nodeid, copy.node_name, copy.cluster, copy.entity_id);
		if (!ast_strlen_zero(copy.ring)) {
			ast_cli(a->fd, "=== Ring: %s, %s, view %ld\n", copy.ring, S_OR(copy.ring_state, "?"), copy.view);
		}
		if (copy.quorum_known) {
			ast_cli(a->fd, "=== Quorum: %s\n", !ast_strlen_zero(copy.quorum_text) ? copy.quorum_text
				: copy.quorate ? "quorate" : "NOT quorate");
		}
	}
	ast_cli(a->fd, "===\n"
		"=== Own device states published: %lu (cleared: %lu)\n"
		"=== Own MWI published: %lu\n"
		"=== Other servers' device states injected: %lu (removed: %lu)\n"
		"=== Cluster MWI injected: %lu\n"
		"=== Servers left: %lu (device states purged: %lu)\n"
		"=== Removed aggregates republished: %lu\n"
		"=== Re-syncs: %lu\n"
		"=== Connections: %lu (reconnects: %lu)\n"
		"=== Queue: %u (overflows: %lu)\n"
		"=== Refused requests: %lu; ignored lines: %lu\n"
		"===\n"
		"=============================================================\n"
		"\n",
		copy.devstates_published, copy.devstates_cleared, copy.mwi_published,
		copy.remote_injected, copy.remote_cleared, copy.mwi_injected,
		copy.servers_left, copy.entries_purged, copy.aggregates_republished, copy.resyncs,
		copy.connects, copy.connects ? copy.connects - 1 : 0, queued, copy.queue_overflows,
		copy.request_errors, copy.bad_lines);
	ao2_cleanup(cfg);
	return CLI_SUCCESS;
}

static char *handle_show_members(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	struct ast_json *response;
	struct ast_json *result;
	struct ast_json *members;
	struct ast_json *quorum;
	size_t i;
	size_t j;

	switch (cmd) {
	case CLI_INIT:
		e->command = "devcluster show members";
		e->usage =
			"Usage: devcluster show members\n"
			"       Show the cluster's servers as devclusterd knows them.\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	if (a->argc != e->args) {
		return CLI_SHOWUSAGE;
	}

	result = cli_daemon_result(a->fd, "members", CLI_TIMEOUT_MS, &response);
	if (!result) {
		ast_json_unref(response);
		return CLI_FAILURE;
	}
	ast_cli(a->fd, "\n"
		"=============================================================\n"
		"=== Cluster members =========================================\n"
		"=============================================================\n"
		"===\n");
	ast_cli(a->fd, "=== Ring: %s, %s\n", S_OR(json_string_member(result, "ring"), "(none yet)"),
		S_OR(json_string_member(result, "state"), "?"));
	quorum = json_typed_member(result, "quorum", AST_JSON_OBJECT);
	if (quorum) {
		ast_cli(a->fd, "=== Quorum: %s\n", S_OR(json_string_member(quorum, "text"),
			ast_json_is_true(ast_json_object_get(quorum, "quorate")) ? "quorate" : "NOT quorate"));
	}
	members = json_typed_member(result, "members", AST_JSON_ARRAY);
	for (i = 0; members && i < ast_json_array_size(members); i++) {
		struct ast_json *member = ast_json_array_get(members, i);
		struct ast_json *addresses = json_typed_member(member, "addresses", AST_JSON_ARRAY);
		intmax_t nodeid = 0;

		json_integer_member(member, "nodeid", &nodeid);
		ast_cli(a->fd, "===\n=== Node %jd: %s%s\n", nodeid, S_OR(json_string_member(member, "name"), "?"),
			ast_json_is_true(ast_json_object_get(member, "local")) ? " (this server)" : "");
		ast_cli(a->fd, "=== --> Member: %s\n", ast_json_is_true(ast_json_object_get(member, "member")) ? "yes" : "no");
		ast_cli(a->fd, "=== --> Entity ID: %s\n", S_OR(json_string_member(member, "entity_id"), "(not known yet)"));
		for (j = 0; addresses && j < ast_json_array_size(addresses); j++) {
			struct ast_json *address = ast_json_array_get(addresses, j);

			ast_cli(a->fd, "=== --> Address %zu: %s\n", j + 1,
				ast_json_typeof(address) == AST_JSON_STRING ? ast_json_string_get(address) : "?");
		}
	}
	ast_cli(a->fd, "===\n"
		"=============================================================\n"
		"\n");
	ast_json_unref(response);
	return CLI_SUCCESS;
}

static char *handle_show_config(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	struct devcluster_config *cfg;

	switch (cmd) {
	case CLI_INIT:
		e->command = "devcluster show config";
		e->usage =
			"Usage: devcluster show config\n"
			"       Show the configuration loaded from res_devcluster.conf.\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	if (a->argc != e->args) {
		return CLI_SHOWUSAGE;
	}
	cfg = ao2_global_obj_ref(global_config);
	if (!cfg) {
		ast_cli(a->fd, "res_devcluster has no configuration loaded\n");
		return CLI_FAILURE;
	}
	ast_cli(a->fd, "\n"
		"=============================================================\n"
		"=== res_devcluster config ===================================\n"
		"=============================================================\n"
		"===\n");
	ast_cli(a->fd, "=== Configuration file: %s\n", cfg->file_found ? CONFIG_FILE : CONFIG_FILE " (not found: defaults)");
	ast_cli(a->fd, "=== Socket: %s\n", cfg->socket_path);
	ast_cli(a->fd, "=== ==> device_state: %s, %s\n",
		cfg->publish_devstate ? "publishing" : "not publishing",
		cfg->subscribe_devstate ? "subscribing" : "not subscribing");
	ast_cli(a->fd, "=== ==> mwi: %s, %s\n",
		cfg->publish_mwi ? "publishing" : "not publishing",
		cfg->subscribe_mwi ? "subscribing" : "not subscribing");
	ast_cli(a->fd, "=== Device filter: %s\n", cfg->has_device_filter ? cfg->device_filter_text : "(none: all devices)");
	ast_cli(a->fd, "=== Mailbox filter: %s\n", cfg->has_mailbox_filter ? cfg->mailbox_filter_text : "(none: all mailboxes)");
	ast_cli(a->fd, "===\n"
		"=============================================================\n"
		"\n");
	ao2_ref(cfg, -1);
	return CLI_SUCCESS;
}

static char *handle_ping(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	struct ast_json *response;
	struct ast_json *result;
	struct ast_json *nodes;
	intmax_t timeout_ms = 0;
	size_t i;

	switch (cmd) {
	case CLI_INIT:
		e->command = "devcluster ping";
		e->usage =
			"Usage: devcluster ping\n"
			"       Measure each server's round-trip time through the ring\n"
			"       (devclusterd's ping; takes up to 2 seconds).\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	if (a->argc != e->args) {
		return CLI_SHOWUSAGE;
	}

	result = cli_daemon_result(a->fd, "ping", CLI_TIMEOUT_MS, &response);
	if (!result) {
		ast_json_unref(response);
		return CLI_FAILURE;
	}
	json_integer_member(result, "timeout_ms", &timeout_ms);
	ast_cli(a->fd, "\n"
		"=============================================================\n"
		"=== Ping through the ring ===================================\n"
		"=============================================================\n"
		"===\n");
	nodes = json_typed_member(result, "nodes", AST_JSON_ARRAY);
	for (i = 0; nodes && i < ast_json_array_size(nodes); i++) {
		struct ast_json *node = ast_json_array_get(nodes, i);
		struct ast_json *rtt = ast_json_object_get(node, "rtt_ms");
		intmax_t nodeid = 0;
		char rtt_text[64];

		json_integer_member(node, "nodeid", &nodeid);
		if (rtt && ast_json_typeof(rtt) == AST_JSON_REAL) {
			snprintf(rtt_text, sizeof(rtt_text), "%.3f ms", ast_json_real_get(rtt));
		} else if (rtt && ast_json_typeof(rtt) == AST_JSON_INTEGER) {
			snprintf(rtt_text, sizeof(rtt_text), "%jd ms", (intmax_t) ast_json_integer_get(rtt));
		} else {
			snprintf(rtt_text, sizeof(rtt_text), "no reply within %jd ms", timeout_ms);
		}
		ast_cli(a->fd, "=== Node %jd (%s): %s\n", nodeid, S_OR(json_string_member(node, "name"), "?"), rtt_text);
	}
	ast_cli(a->fd, "===\n"
		"=============================================================\n"
		"\n");
	ast_json_unref(response);
	return CLI_SUCCESS;
}

static struct ast_cli_entry devcluster_cli[] = {
	AST_CLI_DEFINE(handle_show_status, "Show the connection to devclusterd and counters"),
	AST_CLI_DEFINE(handle_show_members, "Show the cluster's members"),
	AST_CLI_DEFINE(handle_show_config, "Show res_devcluster's configuration"),
	AST_CLI_DEFINE(handle_ping, "Measure round-trip times through the ring"),
};

static int cli_registered;

/*! @} */

/*!
 * \brief Remove the other servers' device states from Asterisk's cache
 *
 * Without the daemon they would never change again.  The caching topic
 * applies a removal in the publishing thread and queues its update to
 * devstate_update_cb, which is still subscribed: unsubscribing afterwards
 * (stasis_unsubscribe_and_join) lets it republish the aggregates that
 * disappear.
 */
static void remote_devstate_clear_all(void)
{
	struct ao2_container *cached;
	struct ao2_iterator it;
	struct stasis_message *msg;
	int count = 0;

	cached = stasis_cache_dump_all(ast_device_state_cache(), ast_device_state_message_type());
	if (!cached) {
		return;
	}
	it = ao2_iterator_init(cached, 0);
	for (; (msg = ao2_iterator_next(&it)); ao2_ref(msg, -1)) {
		struct ast_device_state_message *device_state = stasis_message_data(msg);

		if (device_state->eid && ast_eid_cmp(device_state->eid, &ast_eid_default)) {
			devstate_cache_clear(msg);
			count++;
		}
	}
	ao2_iterator_destroy(&it);
	ao2_ref(cached, -1);
	if (count) {
		ast_log(LOG_NOTICE, "Cleared %d device state%s of other servers\n", count, count == 1 ? "" : "s");
	}
}

static void module_cleanup(void)
{
	if (cli_registered) {
		ast_cli_unregister_multiple(devcluster_cli, ARRAY_LEN(devcluster_cli));
		cli_registered = 0;
	}

	if (module_thread != AST_PTHREADT_NULL) {
		ast_mutex_lock(&queue_lock);
		want_stop = 1;
		thread_wake_locked();
		ast_mutex_unlock(&queue_lock);
		pthread_join(module_thread, NULL);
		module_thread = AST_PTHREADT_NULL;
	}

	if (devstate_sub && !ast_shutting_down()) {
		remote_devstate_clear_all();
	}
	devstate_sub = stasis_unsubscribe_and_join(devstate_sub);
	mwi_sub = stasis_unsubscribe_and_join(mwi_sub);

	ast_mutex_lock(&queue_lock);
	queue_accepting = 0;
	queue_flush_locked();
	want_stop = 0;
	want_resync = 0;
	want_reconnect = 0;
	wake_pending = 0;
	ast_mutex_unlock(&queue_lock);

	ast_alertpipe_close(alert_pipe);
	ao2_global_obj_release(global_config);
}

static int load_module(void)
{
	struct devcluster_config *cfg;
	int unchanged;

	if (ast_eid_is_empty(&ast_eid_default)) {
		ast_log(LOG_ERROR, "Asterisk's entity id is not set: set entityid in asterisk.conf [options] "
			"(the same as devclusterd's [options] entity_id)\n");
		return AST_MODULE_LOAD_DECLINE;
	}
	cfg = config_load(0, &unchanged);
	if (!cfg) {
		ast_log(LOG_ERROR, "%s/%s is not usable: res_devcluster not loaded\n", ast_config_AST_CONFIG_DIR, CONFIG_FILE);
		return AST_MODULE_LOAD_DECLINE;
	}
	ao2_global_obj_replace_unref(global_config, cfg);
	ao2_ref(cfg, -1);

	memset(&status, 0, sizeof(status));
	conn.next_id = 0;
	conn.retry_at = 0;
	conn.backoff_ms = BACKOFF_MIN_MS;
	conn.ever_connected = 0;
	conn.last_logged[0] = '\0';

	if (ast_alertpipe_init(alert_pipe)) {
		ast_log(LOG_ERROR, "Cannot create the module thread's alert pipe\n");
		goto failed;
	}

	devstate_sub = stasis_subscribe(ast_device_state_topic_cached(), devstate_update_cb, NULL);
	if (!devstate_sub) {
		ast_log(LOG_ERROR, "Cannot subscribe to device state cache updates\n");
		goto failed;
	}
	stasis_subscription_accept_message_type(devstate_sub, stasis_cache_update_type());
	stasis_subscription_set_filter(devstate_sub, STASIS_SUBSCRIPTION_FILTER_SELECTIVE);

	mwi_sub = stasis_subscribe(ast_mwi_topic_cached(), mwi_update_cb, NULL);
	if (!mwi_sub) {
		ast_log(LOG_ERROR, "Cannot subscribe to MWI cache updates\n");
		goto failed;
	}
	stasis_subscription_accept_message_type(mwi_sub, stasis_cache_update_type());
	stasis_subscription_set_filter(mwi_sub, STASIS_SUBSCRIPTION_FILTER_SELECTIVE);

	if (ast_pthread_create_background(&module_thread, NULL, devcluster_thread, NULL)) {
		module_thread = AST_PTHREADT_NULL;
		ast_log(LOG_ERROR, "Cannot start the module thread\n");
		goto failed;
	}

	if (ast_cli_register_multiple(devcluster_cli, ARRAY_LEN(devcluster_cli))) {
		ast_log(LOG_ERROR, "Cannot register the devcluster CLI commands\n");
		goto failed;
	}
	cli_registered = 1;
	return AST_MODULE_LOAD_SUCCESS;

failed:
	module_cleanup();
	return AST_MODULE_LOAD_DECLINE;
}

static int unload_module(void)
{
	module_cleanup();
	return 0;
}

static int reload_module(void)
{
	struct devcluster_config *cfg;
	struct devcluster_config *old;
	int unchanged;

	cfg = config_load(1, &unchanged);
	if (unchanged) {
		return AST_MODULE_LOAD_SUCCESS;
	}
	if (!cfg) {
		ast_log(LOG_ERROR, "%s/%s has errors: keeping the previous configuration\n",
			ast_config_AST_CONFIG_DIR, CONFIG_FILE);
		return AST_MODULE_LOAD_DECLINE;
	}
	old = ao2_global_obj_ref(global_config);
	ao2_global_obj_replace_unref(global_config, cfg);

	ast_mutex_lock(&queue_lock);
	if (!old || strcmp(old->socket_path, cfg->socket_path)) {
		want_reconnect = 1;
	} else if (old->publish_devstate != cfg->publish_devstate || old->publish_mwi != cfg->publish_mwi
		|| old->subscribe_devstate != cfg->subscribe_devstate || old->subscribe_mwi != cfg->subscribe_mwi
		|| !config_same_filters(old, cfg)) {
		want_resync = 1;
	}
	thread_wake_locked();
	ast_mutex_unlock(&queue_lock);

	ast_log(LOG_NOTICE, "%s reloaded\n", CONFIG_FILE);
	ao2_cleanup(old);
	ao2_ref(cfg, -1);
	return AST_MODULE_LOAD_SUCCESS;
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER, "Device state and MWI clustering through devclusterd",
	.support_level = AST_MODULE_SUPPORT_EXTENDED,
	.load = load_module,
	.unload = unload_module,
	.reload = reload_module,
	.load_pri = AST_MODPRI_DEVSTATE_PROVIDER,
);
