"""probe.py - one AMQP operation, as any client (pika, not the project's
code) would try it, to show what a broker user may and may not do.

    probe.py URL declare|delete|purge|get|consume|publish|private|leave|forge|big QUEUE [BODY]

  declare   queue.declare QUEUE (durable, quorum), not passive
  delete    queue.delete QUEUE
  purge     queue.purge QUEUE
  get       basic.get QUEUE, unacked (the message goes back on close)
  consume   basic.consume QUEUE (cancelled at once)
  publish   basic.publish BODY (default: a valid job) to QUEUE through the
            default exchange, confirmed
  private   declare a server-named exclusive queue and consume it
  leave     declare a server-named durable queue, not exclusive, not
            auto-delete, and leave it behind; prints "ok NAME"
  big       publish a job padded to BODY (a count of) bytes, confirmed
  forge     publish BODY (a count N) valid jobs, forged-1..N, to QUEUE, each
            with the header x-delivery-count: 5 that only the broker may set

Prints "ok" and exits 0, or "refused CODE TEXT" and exits 3 when the broker
refuses (ACCESS_REFUSED and the like), or an error and exits 1.
"""
import sys

import pika


def main():
    url, action = sys.argv[1], sys.argv[2]
    queue = sys.argv[3] if len(sys.argv) > 3 else ""
    body = sys.argv[4] if len(sys.argv) > 4 else '{"job_id":"probe","user_id":1}'
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
    except pika.exceptions.ProbableAuthenticationError as e:
        print("refused login", e)
        return 3
    ch = conn.channel()
    try:
        if action == "declare":
            ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        elif action == "delete":
            ch.queue_delete(queue)
        elif action == "purge":
            ch.queue_purge(queue)
        elif action == "get":
            ch.basic_get(queue, auto_ack=False)
        elif action == "consume":
            tag = ch.basic_consume(queue, lambda *a: None, auto_ack=False)
            ch.basic_cancel(tag)
        elif action == "publish":
            ch.confirm_delivery()
            ch.basic_publish("", queue, body.encode(),
                             pika.BasicProperties(delivery_mode=2, content_type="application/json"),
                             mandatory=True)
        elif action == "private":
            q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
            tag = ch.basic_consume(q, lambda *a: None)
            ch.basic_cancel(tag)
        elif action == "big":
            ch.confirm_delivery()
            head = '{"job_id":"big","user_id":1,"pad":"'
            job = head + "x" * (int(body) - len(head) - 2) + '"}'
            ch.basic_publish("", queue, job.encode(),
                             pika.BasicProperties(delivery_mode=2, content_type="application/json"),
                             mandatory=True)
        elif action == "forge":
            ch.confirm_delivery()
            props = pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                         headers={"x-delivery-count": 5})
            for i in range(1, int(body) + 1):
                job = '{"job_id":"forged-%d","user_id":%d}' % (i, 1 + i % 5)
                ch.basic_publish("", queue, job.encode(), props, mandatory=True)
        elif action == "leave":
            left = ch.queue_declare("", durable=True).method.queue
            conn.close()
            print("ok", left)
            return 0
        else:
            print("unknown action", action)
            return 1
    except pika.exceptions.ChannelClosedByBroker as e:
        print("refused", e.reply_code, e.reply_text)
        return 3
    except pika.exceptions.UnroutableError:
        print("refused unroutable")
        return 3
    except pika.exceptions.NackError:
        print("refused nacked")
        return 3
    conn.close()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
