#!/usr/bin/env python3
"""Write load through the gateway for deploy/docker/test.sh's fault test.

  write_load.py run BASE_URL TOKEN STOP_FILE RESULT_FILE [BOOK_WRITERS=3]
      Until STOP_FILE exists: BOOK_WRITERS threads create books (POST /book)
      as fast as the gateway answers, and one thread registers a new user
      each second (the per-client limit is 60 a minute). Writes RESULT_FILE:
      {"books": {"acknowledged": [ids], "statuses": {code: n}},
       "users": {"acknowledged": [names], "statuses": {code: n}}}.
  write_load.py verify BASE_URL TOKEN RESULT_FILE USERS_JSON
      Checks that every acknowledged book is there (GET /books/ID) and every
      acknowledged user is in USERS_JSON (`bookstore list-users --json`);
      prints the figures, exits 1 if one is missing.

Python's standard library only (Debian's python3), one keep-alive
connection per thread.
"""
import collections
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse


class Client:
    def __init__(self, base_url, token=None):
        url = urllib.parse.urlsplit(base_url)
        self.host, self.port = url.hostname, url.port or 80
        self.token = token
        self.conn = None

    def call(self, method, path, body=None, headers=None):
        """(status, parsed JSON or None); status "connection" if the gateway
        itself could not be reached (it is never killed, so that is a bug)."""
        headers = dict(headers or {})
        if self.token:
            headers["x-access-tokens"] = self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                try:
                    return response.status, json.loads(raw) if raw else None
                except ValueError:
                    return response.status, None
            except (http.client.HTTPException, OSError):
                # A keep-alive connection the gateway closed: reconnect once.
                self.conn = None
                if attempt == 1:
                    return "connection", None
        return "connection", None


def run(base_url, token, stop_file, result_file, book_writers=3):
    lock = threading.Lock()
    books, book_statuses = [], collections.Counter()
    users, user_statuses = [], collections.Counter()

    def write_books(writer):
        client = Client(base_url, token)
        n = 0
        while not os.path.exists(stop_file):
            n += 1
            body = {"name": f"load {writer}-{n}", "Author": "write_load.py", "Publisher": "CI", "book_prize": n}
            status, answer = client.call("POST", "/book", body)
            with lock:
                book_statuses[str(status)] += 1
                if status == 201:
                    books.append(answer["id"])

    def register_users():
        client = Client(base_url)
        n = 0
        while not os.path.exists(stop_file):
            n += 1
            name = f"load-{os.getpid()}-{n}"
            status, _ = client.call("POST", "/register", {"name": name, "password": "load password"})
            with lock:
                user_statuses[str(status)] += 1
                if status == 201:
                    users.append(name)
            time.sleep(1)

    threads = [threading.Thread(target=write_books, args=(w,)) for w in range(book_writers)]
    threads.append(threading.Thread(target=register_users))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(result_file, "w") as out:
        json.dump({"books": {"acknowledged": books, "statuses": book_statuses},
                   "users": {"acknowledged": users, "statuses": user_statuses}}, out)


def verify(base_url, token, result_file, users_json):
    result = json.load(open(result_file))
    client = Client(base_url, token)
    missing_books = [i for i in result["books"]["acknowledged"] if client.call("GET", f"/books/{i}")[0] != 200]
    names = {user["name"] for user in json.load(open(users_json))}
    missing_users = [name for name in result["users"]["acknowledged"] if name not in names]
    print(f"books: {len(result['books']['acknowledged'])} acknowledged, {len(missing_books)} missing; "
          f"statuses {dict(sorted(result['books']['statuses'].items()))}")
    print(f"users: {len(result['users']['acknowledged'])} acknowledged, {len(missing_users)} missing; "
          f"statuses {dict(sorted(result['users']['statuses'].items()))}")
    if missing_books or missing_users:
        print(f"missing books {missing_books[:20]}, users {missing_users[:20]}")
        sys.exit(1)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "run":
        run(*args[:4], *[int(a) for a in args[4:]])
    elif command == "verify":
        verify(*args)
    else:
        sys.exit(__doc__)
