// Open-loop, fixed-rate HTTP POST generator: latency is measured from each request's
// scheduled send time, so a slow server cannot hide behind a slow client (no coordinated omission).
//
//	loadgen -url URL -rate 5000 -duration 10s -body body.json -header 'K: V' ...
//
// With -first, every "{{N}}" in the body and the header values becomes the request's number
// (first, first+1, ...), so each request is a distinct webhook; -hmac-header/-hmac-secret sign
// each body the way Shopify and WooCommerce do (base64 HMAC-SHA256 of the raw body). Request i is
// scheduled at start + i/rate; the summary prints start as Unix nanoseconds so a receiver can
// measure end to end from the same schedule.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ",") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	url := flag.String("url", "", "target URL")
	rate := flag.Int("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	bodyPath := flag.String("body", "", "file with the request body")
	first := flag.Int64("first", -1, "number the requests from here, replacing {{N}} in body and headers")
	hmacHeader := flag.String("hmac-header", "", "header to carry the base64 HMAC-SHA256 of each body")
	hmacSecret := flag.String("hmac-secret", "", "key of that HMAC")
	var hdrs headers
	flag.Var(&hdrs, "header", "'Name: value' (repeatable)")
	flag.Parse()
	body, err := os.ReadFile(*bodyPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, MaxConnsPerHost: 0},
	}
	total := int(float64(*rate) * duration.Seconds())
	latencies := make([]time.Duration, total)
	var errors int64
	kinds := map[string]int{} // "status503", "transport": why requests were not answered 200
	var mu sync.Mutex
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(*rate)
	request := func(i int) *http.Request {
		payload, values := body, hdrs
		if *first >= 0 {
			n := strconv.FormatInt(*first+int64(i), 10)
			payload = bytes.ReplaceAll(body, []byte("{{N}}"), []byte(n))
			values = make(headers, len(hdrs))
			for j, h := range hdrs {
				values[j] = strings.ReplaceAll(h, "{{N}}", n)
			}
		}
		req, _ := http.NewRequest("POST", *url, bytes.NewReader(payload))
		for _, h := range values {
			k, v, _ := strings.Cut(h, ":")
			req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		if *hmacHeader != "" {
			mac := hmac.New(sha256.New, []byte(*hmacSecret))
			mac.Write(payload)
			req.Header.Set(*hmacHeader, base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		}
		return req
	}
	start := time.Now()
	for i := 0; i < total; i++ {
		scheduled := start.Add(time.Duration(i) * interval)
		if d := time.Until(scheduled); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func(i int, scheduled time.Time) {
			defer wg.Done()
			resp, err := client.Do(request(i))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			latencies[i] = time.Since(scheduled)
			if err != nil || resp.StatusCode != 200 {
				kind := "transport"
				if err == nil {
					kind = fmt.Sprintf("status%d", resp.StatusCode)
				}
				mu.Lock()
				errors++
				kinds[kind]++
				mu.Unlock()
			}
		}(i, scheduled)
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(total-1))].Microseconds()) / 1000
	}
	detail := []string{}
	for kind, n := range kinds {
		detail = append(detail, fmt.Sprintf("%s:%d", kind, n))
	}
	sort.Strings(detail)
	kindsText := "-"
	if len(detail) > 0 {
		kindsText = strings.Join(detail, ",")
	}
	fmt.Printf("rps=%.1f errors=%d p50=%.3f p95=%.3f p99=%.3f start_ns=%d interval_ns=%d error_kinds=%s\n",
		float64(total)/elapsed.Seconds(), errors, pct(0.50), pct(0.95), pct(0.99), start.UnixNano(),
		interval.Nanoseconds(), kindsText)
}
