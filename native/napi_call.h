// Argument reading shared by the addon's N-API entry points (ops_addon.cc,
// ops2_addon.cc): any type or size mismatch marks the call bad, and the entry
// point throws one RangeError for it.
#pragma once
#include <node_api.h>

#include <string>

namespace dsv4 {

/** Reads a call's arguments; the first mismatch throws one RangeError naming the call. */
class Call {
 public:
  Call(napi_env env, napi_callback_info info, const char* name, size_t n) : env_(env), name_(name) {
    size_t argc = n;
    ok_ = n <= 16 && napi_get_cb_info(env, info, &argc, argv_, nullptr, nullptr) == napi_ok && argc >= n;
  }
  template <class T>
  T* array(int i, napi_typedarray_type type, size_t need, size_t* length = nullptr) {
    napi_typedarray_type t;
    size_t len = 0;
    void* data = nullptr;
    napi_value buffer;
    size_t offset;
    bool is = false;
    if (!ok_ || napi_is_typedarray(env_, argv_[i], &is) != napi_ok || !is ||
        napi_get_typedarray_info(env_, argv_[i], &t, &len, &data, &buffer, &offset) != napi_ok || t != type || len < need)
      ok_ = false;
    if (length) *length = len;
    return ok_ ? static_cast<T*>(data) : nullptr;
  }
  int integer(int i) {
    int32_t v = 0;
    if (ok_ && napi_get_value_int32(env_, argv_[i], &v) != napi_ok) ok_ = false;
    return v;
  }
  double number(int i) {
    double v = 0;
    if (ok_ && napi_get_value_double(env_, argv_[i], &v) != napi_ok) ok_ = false;
    return v;
  }
  bool flag(int i) {
    bool v = false;
    if (ok_ && napi_get_value_bool(env_, argv_[i], &v) != napi_ok) ok_ = false;
    return v;
  }
  bool ok() const { return ok_; }
  void check(bool cond) { ok_ = ok_ && cond; }
  /** Throws the given message instead of the generic one. */
  napi_value fail(const char* message) {
    napi_throw_range_error(env_, nullptr, message);
    return nullptr;
  }
  napi_value fail() {
    napi_throw_range_error(env_, nullptr, (std::string("dsv4 native ") + name_ + ": bad argument types or sizes").c_str());
    return nullptr;
  }
  napi_value result(double v) {
    napi_value r;
    napi_create_double(env_, v, &r);
    return r;
  }
  napi_value result(bool v) {
    napi_value r;
    napi_get_boolean(env_, v, &r);
    return r;
  }

 private:
  napi_env env_;
  const char* name_;
  napi_value argv_[16];
  bool ok_;
};

}  // namespace dsv4
